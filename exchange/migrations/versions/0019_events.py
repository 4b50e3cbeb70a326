"""Partner events: a transactional outbox filled by the database itself, webhook
endpoints and their deliveries (decision 0017).

Every change that is an event writes its outbox row in its own statement's transaction,
by trigger: an entry of the ledger (an earn, a redemption, a reversal, an expiry, a
transfer, an adjustment, a hold captured, released or expired), a member's tier change,
a recorded purchase, a co-funding request, a finalized settlement run. No writer has to
remember to emit anything, and no event exists without its change. The rows record what
happened (the partner whose transaction it is, or none for a member's own events; the
member; the facts); which endpoints receive them, under which memberRef, is decided
when they are delivered. The trigger functions run as the owner (the outbox is not the
callers' to write). Events that are not a change (a points-expiring notice, a ping) are
written by the events package.

Row-level security: a partner sees its own endpoints and their deliveries, an operator
everything; the outbox and the notices are the delivery worker's (system scope) only.

Revision ID: 0019
Revises: 0014
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0014"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OPERATOR = f"{KIND} = 'OPERATOR'"
OWN_PARTNER = f"({KIND} = 'PARTNER' AND {{table}}.partner_id = exchange_principal_partner())"
OWNER = "SECURITY DEFINER SET search_path = pg_catalog, public"

TABLES = [
    """
    CREATE TABLE event_outbox (
        id BIGSERIAL NOT NULL,
        type TEXT NOT NULL,
        occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
        partner_id BIGINT,
        member_id BIGINT,
        facts JSONB DEFAULT '{}'::jsonb NOT NULL,
        fanned_out_at TIMESTAMP WITH TIME ZONE,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        CONSTRAINT pk_event_outbox PRIMARY KEY (id),
        CONSTRAINT ck_event_outbox_type CHECK (type ~ '^[a-z_]+\\.[a-z_]+$'),
        CONSTRAINT ck_event_outbox_facts CHECK (jsonb_typeof(facts) = 'object')
    )
    """,
    "CREATE INDEX ix_event_outbox_unfanned ON event_outbox (id) WHERE fanned_out_at IS NULL",
    "CREATE INDEX ix_event_outbox_member ON event_outbox (member_id)",
    "CREATE INDEX ix_event_outbox_created_at ON event_outbox (created_at)",
    """
    CREATE TABLE webhook_endpoint (
        id BIGSERIAL NOT NULL,
        partner_id BIGINT,
        url TEXT NOT NULL,
        event_types TEXT[] NOT NULL,
        status TEXT NOT NULL,
        disabled_reason TEXT,
        secret BYTEA NOT NULL,
        previous_secret BYTEA,
        previous_secret_until TIMESTAMP WITH TIME ZONE,
        created_by TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        deleted_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_webhook_endpoint PRIMARY KEY (id),
        CONSTRAINT fk_webhook_endpoint_partner_id_partner FOREIGN KEY (partner_id)
            REFERENCES partner (id),
        CONSTRAINT ck_webhook_endpoint_status CHECK (status IN ('ENABLED', 'DISABLED')),
        CONSTRAINT ck_webhook_endpoint_url CHECK (char_length(url) BETWEEN 1 AND 2000),
        CONSTRAINT ck_webhook_endpoint_event_types CHECK (cardinality(event_types) >= 1)
    )
    """,
    "CREATE INDEX ix_webhook_endpoint_partner ON webhook_endpoint (partner_id)",
    """
    CREATE TABLE webhook_delivery (
        id BIGSERIAL NOT NULL,
        endpoint_id BIGINT NOT NULL,
        event_id BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        member_key BIGINT DEFAULT 0 NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER DEFAULT 0 NOT NULL,
        next_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL,
        leased_until TIMESTAMP WITH TIME ZONE,
        first_attempt_at TIMESTAMP WITH TIME ZONE,
        last_status_code INTEGER,
        last_error TEXT,
        delivered_at TIMESTAMP WITH TIME ZONE,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_webhook_delivery PRIMARY KEY (id),
        CONSTRAINT fk_webhook_delivery_endpoint_id_webhook_endpoint FOREIGN KEY (endpoint_id)
            REFERENCES webhook_endpoint (id),
        CONSTRAINT uq_webhook_delivery_endpoint_event UNIQUE (endpoint_id, event_id),
        CONSTRAINT ck_webhook_delivery_status
            CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
        CONSTRAINT ck_webhook_delivery_attempts CHECK (attempts >= 0),
        CONSTRAINT ck_webhook_delivery_error CHECK (char_length(last_error) <= 500)
    )
    """,
    """CREATE INDEX ix_webhook_delivery_due ON webhook_delivery (next_attempt_at, id)
    WHERE status = 'PENDING'""",
    """CREATE INDEX ix_webhook_delivery_order ON webhook_delivery
    (endpoint_id, member_key, event_id) WHERE status = 'PENDING'""",
    "CREATE INDEX ix_webhook_delivery_endpoint ON webhook_delivery (endpoint_id, id)",
    "CREATE INDEX ix_webhook_delivery_created_at ON webhook_delivery (created_at)",
    """
    CREATE TABLE expiring_notice (
        lot_id BIGINT NOT NULL,
        event_id BIGINT NOT NULL,
        CONSTRAINT pk_expiring_notice PRIMARY KEY (lot_id)
    )
    """,
]

# What each ledger entry is as an event; a HOLD entry is not one (a hold is announced
# when it is captured, released or expires).
ENTRY_EVENT = """CASE e.kind
    WHEN 'EARN' THEN 'points.earned' WHEN 'REDEEM' THEN 'points.redeemed'
    WHEN 'REVERSAL' THEN 'points.reversed' WHEN 'EXPIRY' THEN 'points.expired'
    WHEN 'TRANSFER' THEN 'points.transferred' WHEN 'ADJUSTMENT' THEN 'points.adjusted'
    WHEN 'CAPTURE' THEN 'hold.captured'
    WHEN 'RELEASE' THEN CASE (SELECT h.status FROM ledger_hold h WHERE h.id = e.hold_id)
                        WHEN 'EXPIRED' THEN 'hold.expired' ELSE 'hold.released' END
END"""


def _balance(member: str) -> str:
    return (
        "(SELECT a.balance FROM ledger_account a"
        f" WHERE a.member_id = {member} AND a.kind = 'MEMBER_WALLET')"
    )


def _facts(member: str, direction: str) -> str:
    return f"""jsonb_strip_nulls(jsonb_build_object(
        'entry', e.id, 'points', e.points, 'balance', {_balance(member)},
        'reference', e.reference, 'hold', e.hold_id, 'direction', {direction},
        'counterparty', CASE WHEN {direction} IS NULL THEN NULL
                        WHEN {member} = e.member_id THEN e.counterparty_member_id
                        ELSE e.member_id END))"""


TRIGGERS = [
    # Ledger entries: a transaction's event belongs to its partner; a partner-less entry
    # (expiry, transfer, adjustment) is the member's, and a transfer is an event of
    # both members. Statement level: one insert for every entry a write made, after the
    # write (the balances and the holds it changed are final).
    f"""
    CREATE FUNCTION events_from_entries() RETURNS trigger LANGUAGE plpgsql {OWNER} AS $$
    BEGIN
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
        SELECT {ENTRY_EVENT}, e.created_at, e.partner_id, e.member_id,
               {_facts("e.member_id", "CASE WHEN e.kind = 'TRANSFER' THEN 'sent' END")}
        FROM written e WHERE e.kind <> 'HOLD'
        UNION ALL
        SELECT 'points.transferred', e.created_at, NULL, e.counterparty_member_id,
               {_facts("e.counterparty_member_id", "'received'")}
        FROM written e WHERE e.kind = 'TRANSFER' AND e.counterparty_member_id IS NOT NULL;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ledger_entry_events AFTER INSERT ON ledger_entry
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION events_from_entries()
    """,
    # A member's tier changed (up in a purchase, down in a review): the member's event.
    f"""
    CREATE FUNCTION events_from_tier_changes() RETURNS trigger LANGUAGE plpgsql {OWNER} AS $$
    BEGIN
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
        SELECT 'member.tier_changed', c.at, NULL, c.member_id,
               jsonb_strip_nulls(jsonb_build_object('from', c.from_tier, 'to', c.to_tier,
                   'qualifyingPoints', c.qualifying_points, 'reason', c.reason))
        FROM changed c;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER member_tier_change_events AFTER INSERT ON member_tier_change
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION events_from_tier_changes()
    """,
    # A purchase is recorded once its awards are booked (its points set): the partner's.
    f"""
    CREATE FUNCTION events_from_purchases() RETURNS trigger LANGUAGE plpgsql {OWNER} AS $$
    BEGIN
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
        VALUES ('purchase.recorded', NEW.created_at, NEW.partner_id, NEW.member_id,
                jsonb_build_object('purchase', NEW.id, 'amount', NEW.amount::text,
                    'currency', NEW.currency, 'points', NEW.points,
                    'occurredAt', NEW.occurred_at, 'balance', {_balance("NEW.member_id")}));
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER purchase_events AFTER UPDATE OF points ON purchase
    FOR EACH ROW EXECUTE FUNCTION events_from_purchases()
    """,
    # A partner asked to co-fund a campaign: that partner's event.
    f"""
    CREATE FUNCTION events_from_funding() RETURNS trigger LANGUAGE plpgsql {OWNER} AS $$
    BEGIN
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
        SELECT 'campaign.funding_requested', now(), f.partner_id, NULL,
               jsonb_build_object('campaign', f.campaign_id, 'share', f.share::text,
                   'owner', c.owner_partner_id, 'name', c.name)
        FROM requested f JOIN campaign c ON c.id = f.campaign_id
        WHERE f.accepted_at IS NULL AND f.partner_id IS NOT NULL;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER campaign_funding_events AFTER INSERT ON campaign_funding
    REFERENCING NEW TABLE AS requested FOR EACH STATEMENT EXECUTE FUNCTION events_from_funding()
    """,
    # A settlement run is finalized: each partner in it gets its own net position.
    f"""
    CREATE FUNCTION events_from_settlement() RETURNS trigger LANGUAGE plpgsql {OWNER} AS $$
    BEGIN
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
        SELECT 'settlement.finalized', coalesce(NEW.finalized_at, now()),
               substr(p.key, 9)::bigint, NULL,
               jsonb_build_object('run', NEW.id, 'from', NEW.document -> 'period' ->> 'from',
                   'to', NEW.document -> 'period' ->> 'to', 'currency', NEW.currency,
                   'netPosition', p.value)
        FROM jsonb_each_text(NEW.document -> 'netPositions') AS p(key, value)
        WHERE p.key LIKE 'partner:%';
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER settlement_run_events AFTER UPDATE OF status ON settlement_run
    FOR EACH ROW WHEN (NEW.status = 'FINALIZED' AND OLD.status <> 'FINALIZED')
    EXECUTE FUNCTION events_from_settlement()
    """,
]


def policies(table: str, *definitions: str) -> list[str]:
    return [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"] + [
        f"CREATE POLICY {definition}".replace("{table}", table) for definition in definitions
    ]


SECURITY = [
    # The API manages its endpoints and reads their deliveries; a ping queues one event
    # for one endpoint (through exchange_ping_endpoint, as the owner).
    "GRANT SELECT, INSERT, UPDATE ON webhook_endpoint, webhook_delivery TO exchange_api",
    "GRANT USAGE, SELECT ON webhook_endpoint_id_seq, webhook_delivery_id_seq TO exchange_api",
    "REVOKE ALL ON event_outbox, expiring_notice FROM exchange_api",
    """
    CREATE FUNCTION exchange_sees_endpoint(wanted bigint) RETURNS boolean LANGUAGE plpgsql
    STABLE AS $$
    BEGIN
        RETURN EXISTS (SELECT 1 FROM webhook_endpoint WHERE id = wanted);
    END $$
    """,
    *policies(
        "webhook_endpoint",
        f"own_rows ON {{table}} FOR ALL USING ({OPERATOR} OR {OWN_PARTNER})"
        f" WITH CHECK (({OPERATOR} AND {{table}}.partner_id IS NULL) OR {OWN_PARTNER})",
    ),
    *policies(
        "webhook_delivery",
        f"own_rows ON {{table}} FOR ALL USING ({OPERATOR}"
        " OR exchange_sees_endpoint({table}.endpoint_id))"
        f" WITH CHECK ({OPERATOR} OR exchange_sees_endpoint({{table}}.endpoint_id))",
    ),
    "ALTER TABLE event_outbox ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE expiring_notice ENABLE ROW LEVEL SECURITY",
    # A ping: one outbox row for one endpoint the caller may see, fanned out already.
    f"""
    CREATE FUNCTION exchange_ping_endpoint(endpoint bigint, at timestamptz) RETURNS bigint
    LANGUAGE plpgsql {OWNER} AS $$
    DECLARE
        event bigint;
    BEGIN
        IF current_setting('role') = 'exchange_api' AND NOT EXISTS (
            SELECT 1 FROM webhook_endpoint WHERE id = endpoint AND deleted_at IS NULL
              AND ({OPERATOR} OR partner_id = exchange_principal_partner())) THEN
            RAISE EXCEPTION 'endpoint % is not the caller''s', endpoint
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts,
                                  fanned_out_at)
        SELECT 'webhook.ping', at, partner_id, NULL, jsonb_build_object('endpoint', id), at
        FROM webhook_endpoint WHERE id = endpoint
        RETURNING id INTO event;
        INSERT INTO webhook_delivery (endpoint_id, event_id, event_type, status,
                                      next_attempt_at, created_at)
        VALUES (endpoint, event, 'webhook.ping', 'PENDING', at, at);
        RETURN event;
    END $$
    """,
    "REVOKE EXECUTE ON FUNCTION exchange_ping_endpoint(bigint, timestamptz) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION exchange_ping_endpoint(bigint, timestamptz) TO exchange_api",
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in (*TABLES, *TRIGGERS, *SECURITY):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
