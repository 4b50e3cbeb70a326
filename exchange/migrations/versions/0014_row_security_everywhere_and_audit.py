"""Row-level security on every table that holds a partner's or a member's rows, one
explicit grant for writes across scopes, and the audit log of operator actions.

Policies (docs/decisions/0009): an operator sees everything; a partner its own rows, the
rows of members it linked and the coalition's shared accounts; a member its own rows;
with no principal bound, nothing. Member-owned rows (accounts, lots, identity) admit the
partners that linked the member, so the combined wallet still works. Writes that must
reach another caller's rows (a transfer credits the recipient's wallet; a co-funded
campaign issues from a funder's account) are admitted only for the ids a use case
granted in its transaction (``exchange.kit.db.grant``), and only where that write
needs them. The token tables (signing keys, revoked tokens, used client assertions)
and Alembic's own table hold no partner's or member's rows and are not the API's at
all: the API role loses every privilege on them.

Checks that must see the whole ledger (an entry balances, a run balances, a watched
wallet notifies) and two narrow lookups (a member by blind index, a partner's
outstanding points) run as the owner (SECURITY DEFINER), so row-level security can
neither hide rows from them nor widen what callers see.

The audit log is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE even to the
owner; the API role has no UPDATE or DELETE privilege) and only operators see it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OPERATOR = f"{KIND} = 'OPERATOR'"
ANY_CALLER = f"{KIND} IN ('OPERATOR', 'PARTNER', 'MEMBER')"
IS_PARTNER = f"{KIND} = 'PARTNER'"


# Policy expressions name the policy's own table as ``{table}`` (:func:`policies` fills
# it in), so no column can bind to another table by accident. What a policy must look
# up elsewhere (a link, another table's row) is a PL/pgSQL function: its query is
# planned once per session, where a subquery in a policy is planned into every statement
# on the table (the one writer touches seven tables: 16 ms of planning per redemption).


def own_partner(column: str = "{table}.partner_id") -> str:
    return f"({IS_PARTNER} AND {column} = exchange_principal_partner())"


def own_member(column: str = "{table}.member_id") -> str:
    return f"({KIND} = 'MEMBER' AND {column} = exchange_principal_member())"


def linked(column: str = "{table}.member_id") -> str:
    """The calling partner linked this member."""
    return f"exchange_linked({column})"


def sees(kind: str, column: str) -> str:
    """The caller may see that row of another table (its own policies decide)."""
    return f"exchange_sees_{kind}({column})"


def granted_member(column: str = "{table}.member_id") -> str:
    return f"{column} = ANY(exchange_granted_members())"


def granted_partner(column: str = "{table}.partner_id") -> str:
    return f"{column} = ANY(exchange_granted_partners())"


#: Run as the owner: row-level security neither hides rows from it nor applies.
OWNER = "SECURITY DEFINER SET search_path = pg_catalog, public"
#: True inside a SECURITY DEFINER function when the caller is the API role (which
#: ``Database.transaction`` sets with ``set_config('role', ...)``), not the owner.
API_CALLER = "current_setting('role') = 'exchange_api'"


def lookup(name: str, body: str) -> str:
    """A STABLE PL/pgSQL predicate over one id, run as the caller (row-level security
    applies to its query)."""
    return f"""
    CREATE FUNCTION {name}(wanted bigint) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
    BEGIN
        RETURN {body};
    END $$
    """


HELPERS = [
    # A partner linked this member (an index probe, not a hash of all its links).
    lookup(
        "exchange_linked",
        f"{IS_PARTNER} AND EXISTS (SELECT 1 FROM member_link l"
        " WHERE l.member_id = wanted AND l.partner_id = exchange_principal_partner())",
    ),
    *[
        lookup(f"exchange_sees_{kind}", f"EXISTS (SELECT 1 FROM {table} WHERE id = wanted)")
        for kind, table in (
            ("account", "ledger_account"),
            ("entry", "ledger_entry"),
            ("lot", "ledger_lot"),
            ("run", "settlement_run"),
            ("purchase", "purchase"),
            ("campaign", "campaign"),
        )
    ],
    # The ids a use case granted in this transaction (exchange.kit.db.grant).
    """
    CREATE FUNCTION exchange_granted_members() RETURNS bigint[] LANGUAGE sql STABLE AS $$
        SELECT coalesce(string_to_array(
            nullif(current_setting('exchange.granted_members', true), ''), ',')::bigint[],
            '{}')
    $$
    """,
    """
    CREATE FUNCTION exchange_granted_partners() RETURNS bigint[] LANGUAGE sql STABLE AS $$
        SELECT coalesce(string_to_array(
            nullif(current_setting('exchange.granted_partners', true), ''), ',')::bigint[],
            '{}')
    $$
    """,
    # Integrity checks see every row, whoever's transaction runs them.
    f"ALTER FUNCTION ledger_check_entry_balanced(bigint) {OWNER}",
    f"ALTER FUNCTION settlement_check_run_balanced() {OWNER}",
    # A transfer credits a recipient whose watch the sender cannot see.
    f"ALTER FUNCTION ledger_notify_watched_wallet() {OWNER}",
    # Linking and gifting find a member by contact across the coalition: only the ids of
    # the members with exactly this blind index, never their identity rows.
    f"""
    CREATE FUNCTION exchange_members_by_contact(wanted_email bytea, wanted_phone bytea)
    RETURNS SETOF bigint LANGUAGE sql STABLE {OWNER} AS $$
        SELECT i.member_id FROM member_identity i
        WHERE (i.email_index = wanted_email OR i.phone_index = wanted_phone)
          AND (NOT {API_CALLER} OR {ANY_CALLER})
        ORDER BY i.member_id
    $$
    """,
    # A credit limit counts the partner's points wherever they are: in lots of members
    # it never linked (transfers) and on holds at other partners. Only the partner
    # itself, an operator, or a caller granted that partner may ask.
    f"""
    CREATE FUNCTION ledger_outstanding_points(issuer bigint) RETURNS bigint
    LANGUAGE plpgsql STABLE {OWNER} AS $$
    BEGIN
        IF {API_CALLER} AND NOT ({OPERATOR} OR {own_partner("issuer")}
                                 OR {granted_partner("issuer")}) THEN
            RAISE EXCEPTION 'the outstanding points of partner % are not the caller''s',
                issuer USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN (SELECT coalesce(sum(remaining), 0) FROM ledger_lot
                WHERE issuer_partner_id = issuer AND remaining <> 0)
             + (SELECT coalesce(sum(c.points), 0) FROM ledger_hold h
                JOIN ledger_lot_consumption c ON c.hold_id = h.id AND c.kind = 'HOLD'
                WHERE h.status = 'ACTIVE' AND c.issuer_partner_id = issuer);
    END $$
    """,
    *[
        statement
        for signature in (
            "exchange_members_by_contact(bytea, bytea)",
            "ledger_outstanding_points(bigint)",
        )
        for statement in (
            f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC",
            f"GRANT EXECUTE ON FUNCTION {signature} TO exchange_api",
        )
    ],
]

ACCOUNT = (
    f"{OPERATOR} OR ({{table}}.partner_id IS NULL AND {{table}}.member_id IS NULL"
    f" AND {ANY_CALLER}) OR {own_partner()} OR {own_member()} OR {linked()}"
    f" OR ({{table}}.kind = 'MEMBER_WALLET' AND {granted_member()})"
    f" OR ({{table}}.kind = 'PARTNER_ISSUED' AND {granted_partner()})"
)
ENTRY = f"""
    {OPERATOR} OR {own_partner()}
    OR ({{table}}.partner_id IS NULL AND {linked()})
    OR ({KIND} = 'MEMBER' AND exchange_principal_member()
        IN ({{table}}.member_id, {{table}}.counterparty_member_id))
    OR ({{table}}.kind = 'EARN' AND {granted_partner()} AND {linked()})"""
ENTRY_WRITTEN = f"""
    {OPERATOR} OR {own_partner()}
    OR ({{table}}.partner_id IS NULL AND ({linked()} OR {own_member()}))
    OR ({{table}}.kind = 'EARN' AND {granted_partner()} AND {linked()})"""
SHARD = f"{OPERATOR} OR {sees('account', '{table}.account_id')}"
MEMBERS = f"{OPERATOR} OR {own_member()} OR {linked()}"
ENTRY_VISIBLE = sees("entry", "{table}.entry_id")
LOT_VISIBLE = sees("lot", "{table}.lot_id")
ACCOUNT_VISIBLE = sees("account", "{table}.account_id")
OWN_PARTY = "'partner:' || exchange_principal_partner()"


def policies(table: str, *definitions: str, enable: bool = True) -> list[str]:
    """Row-level security on ``table`` with these policies (``{table}``: its name)."""
    enabling = [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"] if enable else []
    return enabling + [
        f"CREATE POLICY {definition}".replace("{table}", table) for definition in definitions
    ]


def operators_write(table: str) -> str:
    return f"administered ON {table} FOR ALL USING ({OPERATOR}) WITH CHECK ({OPERATOR})"


POLICIES = [
    # ledger_entry: the policy of 0003, with its partner-less arm an index probe and a
    # tighter check: a partner-less entry (expiry, transfer) only for a member the caller
    # linked or is; a granted funder's EARN entries (co-funded issuance). A reversal
    # locks its target (SELECT ... FOR UPDATE needs an UPDATE policy); no entry changes.
    "DROP POLICY own_rows ON ledger_entry",
    *policies(
        "ledger_entry",
        f"visible ON {{table}} FOR SELECT USING ({ENTRY})",
        f"locked ON {{table}} FOR UPDATE USING ({ENTRY}) WITH CHECK (false)",
        f"written ON {{table}} FOR INSERT WITH CHECK ({ENTRY_WRITTEN})",
        enable=False,
    ),
    # ledger_account: the coalition's accounts are everyone's to post to (a spend sweeps
    # expired lots into breakage); a granted recipient's wallet and a granted funder's
    # issued account, nothing else of theirs. A partner opens a new member's accounts
    # (at zero) when it links someone nobody linked before.
    *policies(
        "ledger_account",
        f"visible ON {{table}} FOR SELECT USING ({ACCOUNT})",
        f"balances ON {{table}} FOR UPDATE USING ({ACCOUNT}) WITH CHECK ({ACCOUNT})",
        f"opened ON {{table}} FOR INSERT WITH CHECK ({OPERATOR}"
        f" OR ({IS_PARTNER} AND {{table}}.member_id IS NOT NULL AND {{table}}.balance = 0))",
    ),
    # ledger_account_shard: as its account.
    *policies(
        "ledger_account_shard",
        f"visible ON {{table}} FOR SELECT USING ({SHARD})",
        f"balances ON {{table}} FOR UPDATE USING ({SHARD}) WITH CHECK ({SHARD})",
        f"opened ON {{table}} FOR INSERT WITH CHECK ({OPERATOR})",
    ),
    # ledger_posting: read with its entry; written to an account the caller may post to
    # (the entry is new in the same statement, which a check cannot see yet).
    *policies(
        "ledger_posting",
        f"visible ON {{table}} FOR SELECT USING ({OPERATOR} OR {ENTRY_VISIBLE})",
        f"written ON {{table}} FOR INSERT WITH CHECK ({OPERATOR} OR {ACCOUNT_VISIBLE})",
    ),
    # ledger_lot: the member's; new lots also for a granted recipient.
    *policies(
        "ledger_lot",
        f"visible ON {{table}} FOR SELECT USING ({MEMBERS})",
        f"spent ON {{table}} FOR UPDATE USING ({MEMBERS}) WITH CHECK ({MEMBERS})",
        f"created ON {{table}} FOR INSERT WITH CHECK ({OPERATOR} OR {linked()}"
        f" OR {granted_member()})",
    ),
    # ledger_lot_consumption: read with its entry or its lot; written against a lot the
    # caller may spend.
    *policies(
        "ledger_lot_consumption",
        f"visible ON {{table}} FOR SELECT USING ({OPERATOR} OR {ENTRY_VISIBLE} OR {LOT_VISIBLE})",
        f"written ON {{table}} FOR INSERT WITH CHECK ({OPERATOR} OR {LOT_VISIBLE})",
    ),
    # member_identity: as the member's links; a partner creates the identity of a member
    # nobody linked before, and adds facts once it has linked the member.
    *policies(
        "member_identity",
        f"visible ON {{table}} FOR SELECT USING ({MEMBERS})",
        f"facts ON {{table}} FOR UPDATE USING ({MEMBERS}) WITH CHECK ({OPERATOR} OR {linked()})",
        f"created ON {{table}} FOR INSERT WITH CHECK ({OPERATOR}"
        f" OR ({IS_PARTNER} AND {{table}}.erased_at IS NULL))",
    ),
    # wallet_watch: a member leases its own live updates.
    *policies(
        "wallet_watch",
        f"own_rows ON {{table}} FOR ALL USING ({OPERATOR} OR {own_member()})"
        f" WITH CHECK ({own_member()})",
    ),
    # partner: the registry of names is public to every caller; operators change it.
    *policies(
        "partner",
        f"registry ON {{table}} FOR SELECT USING ({ANY_CALLER})",
        operators_write("{table}"),
    ),
    # settlement: a partner reads finalized runs (the use case cuts the document down to
    # its own statement), its own postings, and the payments of its own instructions.
    *policies(
        "settlement_run",
        f"visible ON {{table}} FOR SELECT USING ({OPERATOR}"
        f" OR ({IS_PARTNER} AND {{table}}.status IN ('FINALIZED', 'PAID')))",
        operators_write("{table}"),
    ),
    *policies(
        "settlement_posting",
        f"visible ON {{table}} FOR SELECT USING ({OPERATOR} OR ({IS_PARTNER}"
        f" AND {{table}}.account = 'Partner:' || exchange_principal_partner()"
        " AND exchange_sees_run({table}.run_id)))",
        operators_write("{table}"),
    ),
    *policies(
        "settlement_payment",
        f"""visible ON {{table}} FOR SELECT USING ({OPERATOR} OR ({IS_PARTNER} AND EXISTS (
            SELECT 1 FROM settlement_run r WHERE r.id = {{table}}.run_id AND {OWN_PARTY} IN (
                r.document -> 'instructions' -> ({{table}}.instruction - 1) ->> 'payer',
                r.document -> 'instructions' -> ({{table}}.instruction - 1) ->> 'payee'))))""",
        operators_write("{table}"),
    ),
]

# The loyalty engine's tables (migration 0012) in the same style: what a policy looks up
# is a function, not a subquery planned into every statement.
LOYALTY_MEMBER_TABLES = (
    "campaign_member_use",
    "member_tier",
    "member_tier_change",
    "member_qualifying",
    "member_profile",
    "member_partner_stats",
    "member_category_stats",
)
LOYALTY = [
    *[
        statement
        for table, visible in (
            *((t, f"{OPERATOR} OR {sees('purchase', '{table}.purchase_id')}")
              for t in ("purchase_award", "purchase_refund")),
            *((t, f"{OPERATOR} OR {sees('campaign', '{table}.campaign_id')}")
              for t in ("campaign_funding", "campaign_budget_shard")),
            *((t, MEMBERS) for t in LOYALTY_MEMBER_TABLES),
        )
        for statement in (
            f"DROP POLICY own_rows ON {table}",
            *policies(
                table,
                f"own_rows ON {{table}} FOR ALL USING ({visible}) WITH CHECK ({visible})",
                enable=False,
            ),
        )
    ],
    # tier: the coalition's ladder, read by every caller, changed by operators' CLI only.
    "REVOKE ALL ON tier FROM exchange_api",
    "GRANT SELECT ON tier TO exchange_api",
    *policies("tier", f"ladder ON {{table}} FOR SELECT USING ({ANY_CALLER})"),
    # limit_bucket (migration 0013): a client's own buckets; an operator reads them all.
    "DROP POLICY own_buckets ON limit_bucket",
    *policies(
        "limit_bucket",
        f"own_buckets ON {{table}} USING ({OPERATOR}"
        " OR {table}.client_id = exchange_principal_client())"
        " WITH CHECK ({table}.client_id = exchange_principal_client())",
        enable=False,
    ),
]  # fmt: skip

#: Not the API's: no partner's or member's rows, only the token endpoint (system scope)
#: and Alembic use them. Row-level security with no policy too, should a grant return.
NOT_THE_APIS = [
    *[
        statement
        for table in ("signing_key", "revoked_token", "used_client_assertion")
        for statement in (
            f"REVOKE ALL ON {table} FROM exchange_api",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        )
    ],
    "REVOKE ALL ON alembic_version FROM exchange_api",
]

AUDIT = [
    """
    CREATE TABLE audit_log (
        id BIGSERIAL NOT NULL,
        at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        actor TEXT NOT NULL,
        origin TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        details JSONB DEFAULT '{}'::jsonb NOT NULL,
        CONSTRAINT pk_audit_log PRIMARY KEY (id),
        CONSTRAINT ck_audit_log_actor CHECK (char_length(actor) BETWEEN 1 AND 300),
        CONSTRAINT ck_audit_log_origin CHECK (char_length(origin) BETWEEN 1 AND 300),
        CONSTRAINT ck_audit_log_action CHECK (action ~ '^[a-z_]+\\.[a-z_]+$'),
        CONSTRAINT ck_audit_log_subject CHECK (char_length(subject) BETWEEN 1 AND 300),
        CONSTRAINT ck_audit_log_details CHECK (jsonb_typeof(details) = 'object')
    )
    """,
    "CREATE INDEX ix_audit_log_at ON audit_log (at, id)",
    "CREATE INDEX ix_audit_log_action ON audit_log (action, at)",
    """
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()
    """,
    "REVOKE ALL ON audit_log FROM exchange_api",
    "GRANT SELECT, INSERT ON audit_log TO exchange_api",
    *policies("audit_log", operators_write("{table}")),
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in (*HELPERS, *POLICIES, *LOYALTY, *NOT_THE_APIS, *AUDIT):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only; restore from backup instead")
