"""The points ledger's tables (SQLAlchemy Core). The migration owns the DDL; a test
checks that the migrated schema and these definitions agree."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from exchange.kit.db import metadata

account = Table(
    "ledger_account",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("partner_id", BigInteger),
    Column("member_id", BigInteger),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("sharded", Boolean, nullable=False),
    Column("credit_limit_points", BigInteger),
    Column("points_lifetime_days", Integer),
    Column("allow_negative_reversal", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("max_points_per_operation", BigInteger),
    CheckConstraint(
        "kind IN ('MEMBER_WALLET', 'MEMBER_HELD', 'PARTNER_ISSUED', 'PARTNER_REDEEMED',"
        " 'COALITION_BREAKAGE', 'COALITION_ADJUSTMENTS', 'COALITION_ISSUED')",
        name="kind",
    ),
    CheckConstraint(
        "(kind LIKE 'MEMBER_%') = (member_id IS NOT NULL)"
        " AND (kind LIKE 'PARTNER_%') = (partner_id IS NOT NULL)",
        name="owner",
    ),
    CheckConstraint("kind <> 'MEMBER_HELD' OR balance >= 0", name="held_not_negative"),
    CheckConstraint("NOT sharded OR balance = 0", name="sharded_balance_in_shards"),
    CheckConstraint("credit_limit_points IS NULL OR credit_limit_points >= 0", name="limit"),
    CheckConstraint("points_lifetime_days IS NULL OR points_lifetime_days > 0", name="lifetime"),
    CheckConstraint(
        "max_points_per_operation IS NULL OR max_points_per_operation > 0", name="max_points"
    ),
)
Index(
    "uq_ledger_account_member",
    account.c.member_id,
    account.c.kind,
    unique=True,
    postgresql_where=account.c.member_id.isnot(None),
)
Index(
    "uq_ledger_account_partner",
    account.c.partner_id,
    account.c.kind,
    unique=True,
    postgresql_where=account.c.partner_id.isnot(None),
)
Index(
    "uq_ledger_account_coalition",
    account.c.kind,
    unique=True,
    postgresql_where=text("partner_id IS NULL AND member_id IS NULL"),
)

account_shard = Table(
    "ledger_account_shard",
    metadata,
    Column("account_id", BigInteger, ForeignKey("ledger_account.id"), primary_key=True),
    Column("shard", SmallInteger, primary_key=True),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
)

entry = Table(
    "ledger_entry",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("partner_id", BigInteger),
    Column("member_id", BigInteger),
    Column("counterparty_member_id", BigInteger),
    Column("points", BigInteger, nullable=False),
    Column("client_id", Text),
    Column("idempotency_key", Text),
    Column("request_hash", LargeBinary),
    Column("reference", Text),
    Column("target_entry_id", BigInteger, ForeignKey("ledger_entry.id")),
    Column("hold_id", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    CheckConstraint(
        "kind IN ('EARN', 'REDEEM', 'HOLD', 'CAPTURE', 'RELEASE', 'REVERSAL', 'EXPIRY',"
        " 'TRANSFER', 'ADJUSTMENT')",
        name="kind",
    ),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint("(client_id IS NULL) = (idempotency_key IS NULL)", name="idempotency"),
    CheckConstraint("char_length(idempotency_key) <= 200", name="key_length"),
    CheckConstraint("char_length(reference) <= 200", name="reference_length"),
)
Index(
    "uq_ledger_entry_idempotency",
    entry.c.client_id,
    entry.c.idempotency_key,
    unique=True,
)
Index("ix_ledger_entry_member", entry.c.member_id, entry.c.id)
Index("ix_ledger_entry_partner", entry.c.partner_id, entry.c.id)
Index("ix_ledger_entry_effective_at", entry.c.effective_at)
Index(
    "ix_ledger_entry_target",
    entry.c.target_entry_id,
    postgresql_where=entry.c.target_entry_id.isnot(None),
)

posting = Table(
    "ledger_posting",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("entry_id", BigInteger, ForeignKey("ledger_entry.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("ledger_account.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
)
Index("ix_ledger_posting_entry", posting.c.entry_id)
Index("ix_ledger_posting_account", posting.c.account_id, posting.c.id)

lot = Table(
    "ledger_lot",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("member_id", BigInteger, nullable=False),
    Column("issuer_partner_id", BigInteger),
    Column("origin", Text, nullable=False),
    Column("entry_id", BigInteger, ForeignKey("ledger_entry.id"), nullable=False),
    Column("source_lot_id", BigInteger, ForeignKey("ledger_lot.id")),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("earned_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("origin IN ('EARN', 'TRANSFER', 'ADJUSTMENT')", name="origin"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("remaining <= amount", name="remaining_at_most_amount"),
    CheckConstraint("expires_at > earned_at", name="expires_after_earned"),
)
Index(
    "ix_ledger_lot_spendable",
    lot.c.member_id,
    lot.c.expires_at,
    lot.c.id,
    postgresql_where=lot.c.remaining > 0,
)
Index("ix_ledger_lot_expiry", lot.c.expires_at, postgresql_where=lot.c.remaining > 0)
# A wallet's points per issuer: lots still owned, debts (remaining < 0) included.
Index("ix_ledger_lot_owned", lot.c.member_id, postgresql_where=lot.c.remaining != 0)
Index("ix_ledger_lot_entry", lot.c.entry_id)
# A partner's points outstanding and points issued, read from the index (migration 0023).
Index(
    "ix_ledger_lot_issuer_outstanding",
    lot.c.issuer_partner_id,
    postgresql_include=["remaining"],
    postgresql_where=lot.c.remaining != 0,
)
Index(
    "ix_ledger_lot_issued",
    lot.c.issuer_partner_id,
    lot.c.earned_at,
    postgresql_include=["amount"],
    postgresql_where=lot.c.origin == "EARN",
)

lot_consumption = Table(
    "ledger_lot_consumption",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("entry_id", BigInteger, ForeignKey("ledger_entry.id"), nullable=False),
    Column("lot_id", BigInteger, ForeignKey("ledger_lot.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("issuer_partner_id", BigInteger),
    Column("redeemer_partner_id", BigInteger),
    Column("hold_id", BigInteger),
    CheckConstraint(
        "kind IN ('HOLD', 'REDEEM', 'TRANSFER', 'EXPIRY', 'EARN_REVERSAL', 'ADJUSTMENT')",
        name="kind",
    ),
    CheckConstraint("points <> 0", name="points_not_zero"),
    CheckConstraint("kind <> 'REDEEM' OR redeemer_partner_id IS NOT NULL", name="redeemer"),
)
Index("ix_ledger_lot_consumption_lot", lot_consumption.c.lot_id)
Index("ix_ledger_lot_consumption_entry", lot_consumption.c.entry_id)
Index(
    "ix_ledger_lot_consumption_hold",
    lot_consumption.c.hold_id,
    postgresql_where=lot_consumption.c.hold_id.isnot(None),
)

hold = Table(
    "ledger_hold",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("member_id", BigInteger, nullable=False),
    Column("partner_id", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("captured_points", BigInteger, nullable=False, server_default=text("0")),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("hold_entry_id", BigInteger, ForeignKey("ledger_entry.id"), nullable=False),
    Column("closing_entry_id", BigInteger, ForeignKey("ledger_entry.id")),
    CheckConstraint("status IN ('ACTIVE', 'CAPTURED', 'RELEASED', 'EXPIRED')", name="status"),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint(
        "captured_points >= 0 AND captured_points <= points", name="captured_within_points"
    ),
    CheckConstraint("(status = 'ACTIVE') = (closing_entry_id IS NULL)", name="closing_entry"),
)
Index("ix_ledger_hold_member", hold.c.member_id)
Index("ix_ledger_hold_active_expiry", hold.c.expires_at, postgresql_where=hold.c.status == "ACTIVE")

wallet_watch = Table(
    "wallet_watch",
    metadata,
    Column("member_id", BigInteger, primary_key=True),
    Column("watcher", Text, primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
