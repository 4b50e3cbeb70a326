"""Member insights: RFM quintiles on the profiles the purchases already keep, custom
segments, targeted campaigns with their selection (treated and control) and offers, and
the events of offers (decision 0018).

A member's profile per partner is ``member_partner_stats`` (migration 0012, kept in the
purchase's own transaction; a refund now takes back its spend); the coalition-wide one
is the sum of those rows, used only for a member who consented to cross-partner use
(``member_profile.consent_cross_partner``). RFM quintiles (per partner on the stats
rows, coalition-wide on ``member_profile``) are recomputed set-based by the refresh.

The built-in segments are one SQL function, ``insights_segments``, over a profile's
first and last purchase, purchase count and monetary quintile at a moment: every reader
(a member's segments, segment sizes, campaign conditions, audience selection) calls it,
so the rules have one home.

Row-level security: a partner sees its own custom segments, the targets of campaigns it
sees, and the offers of members it linked; a member its own offers; an operator all. The
selection of a campaign (who was treated and who held out) is nobody's to read: the
selection and the report's outcome are functions run as the owner, which check that the
caller may manage the campaign, and return counts only.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

KIND = "exchange_principal_kind()"
OPERATOR = f"{KIND} = 'OPERATOR'"
IS_PARTNER = f"{KIND} = 'PARTNER'"
OWNER = "SECURITY DEFINER SET search_path = pg_catalog, public"
API_CALLER = "current_setting('role') = 'exchange_api'"
MEMBERS = (
    f"{OPERATOR} OR ({KIND} = 'MEMBER' AND {{table}}.member_id = exchange_principal_member())"
    " OR exchange_linked({table}.member_id)"
)

PROFILES = [
    """
    ALTER TABLE member_partner_stats
        ADD COLUMN rfm_recency SMALLINT,
        ADD COLUMN rfm_frequency SMALLINT,
        ADD COLUMN rfm_monetary SMALLINT
    """,
    """
    ALTER TABLE member_profile
        ADD COLUMN rfm_recency SMALLINT,
        ADD COLUMN rfm_frequency SMALLINT,
        ADD COLUMN rfm_monetary SMALLINT
    """,
    # The built-in segments of a profile at a moment (decision 0018 has the rules).
    """
    CREATE FUNCTION insights_segments(first_at timestamptz, last_at timestamptz,
                                      purchases integer, monetary smallint, moment timestamptz)
    RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN coalesce(purchases, 0) <= 0 THEN '{}'::text[] ELSE array_remove(ARRAY[
            CASE WHEN moment - first_at <= interval '30 days' THEN 'NEW' END,
            CASE WHEN moment - last_at <= interval '90 days' THEN 'ACTIVE' END,
            CASE WHEN purchases >= 2 THEN 'REPEAT' END,
            CASE WHEN monetary = 5 THEN 'HIGH_VALUE' END,
            CASE WHEN purchases >= 2 AND moment - last_at >= interval '30 days'
                  AND moment - last_at > 2 * ((last_at - first_at) / (purchases - 1))
                 THEN 'AT_RISK' END,
            CASE WHEN moment - last_at >= interval '180 days' THEN 'LAPSED' END
        ], NULL) END
    $$
    """,
]

TABLES = [
    """
    CREATE TABLE segment (
        id BIGSERIAL NOT NULL,
        owner_partner_id BIGINT,
        name TEXT NOT NULL,
        condition TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_segment PRIMARY KEY (id),
        CONSTRAINT fk_segment_owner_partner_id_partner FOREIGN KEY (owner_partner_id)
            REFERENCES partner (id),
        CONSTRAINT ck_segment_name CHECK (name ~ '^[A-Z][A-Z0-9_]{0,59}$')
    )
    """,
    # Built-in segments are ids 1 to 6 in the API; custom ones start above.
    "ALTER SEQUENCE segment_id_seq RESTART WITH 100",
    """CREATE UNIQUE INDEX uq_segment_owner_name ON segment (coalesce(owner_partner_id, 0), name)""",
    """
    CREATE TABLE campaign_target (
        campaign_id BIGINT NOT NULL,
        segment TEXT NOT NULL,
        audience TEXT NOT NULL,
        control_share NUMERIC(5, 4) NOT NULL,
        offer_title TEXT NOT NULL,
        offer_description TEXT,
        treated INTEGER DEFAULT 0 NOT NULL,
        control INTEGER DEFAULT 0 NOT NULL,
        selected_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_campaign_target PRIMARY KEY (campaign_id),
        CONSTRAINT fk_campaign_target_campaign_id_campaign FOREIGN KEY (campaign_id)
            REFERENCES campaign (id),
        CONSTRAINT ck_campaign_target_audience CHECK (audience IN ('OWN_MEMBERS', 'COALITION')),
        CONSTRAINT ck_campaign_target_control_share CHECK (control_share >= 0 AND control_share < 1)
    )
    """,
    """
    CREATE TABLE campaign_selection (
        campaign_id BIGINT NOT NULL,
        member_id BIGINT NOT NULL,
        control BOOLEAN NOT NULL,
        selected_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_campaign_selection PRIMARY KEY (campaign_id, member_id),
        CONSTRAINT fk_campaign_selection_campaign_id_campaign FOREIGN KEY (campaign_id)
            REFERENCES campaign (id)
    )
    """,
    "CREATE INDEX ix_campaign_selection_member_id ON campaign_selection (member_id)",
    """
    CREATE TABLE offer (
        id BIGSERIAL NOT NULL,
        campaign_id BIGINT NOT NULL,
        member_id BIGINT NOT NULL,
        title TEXT NOT NULL,
        description TEXT,
        status TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        activated_at TIMESTAMP WITH TIME ZONE,
        used_at TIMESTAMP WITH TIME ZONE,
        expires_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_offer PRIMARY KEY (id),
        CONSTRAINT fk_offer_campaign_id_campaign FOREIGN KEY (campaign_id)
            REFERENCES campaign (id),
        CONSTRAINT uq_offer_campaign_id_member_id UNIQUE (campaign_id, member_id),
        CONSTRAINT ck_offer_status CHECK (status IN ('AVAILABLE', 'ACTIVATED', 'USED'))
    )
    """,
    "CREATE INDEX ix_offer_member_id ON offer (member_id)",
]


def _audience() -> str:
    """The members a target selects (``t`` the target, ``c`` its campaign): its owner's
    own members by their profile at the owner; or members who consented to cross-partner
    use and never bought at the owner (any partner for an operator's campaign), by their
    coalition-wide profile."""
    return """
        SELECT s.member_id FROM member_partner_stats s
        WHERE t.audience = 'OWN_MEMBERS' AND s.partner_id = c.owner_partner_id
          AND EXISTS (SELECT 1 FROM member_link l
                      WHERE l.member_id = s.member_id AND l.partner_id = s.partner_id)
          AND t.segment = ANY(insights_segments(s.first_purchase_at, s.last_purchase_at,
                                                s.purchases, s.rfm_monetary, chosen_at))
        UNION ALL
        SELECT s.member_id FROM member_partner_stats s
        JOIN member_profile p ON p.member_id = s.member_id AND p.consent_cross_partner
        WHERE t.audience = 'COALITION'
        GROUP BY s.member_id, p.rfm_monetary
        HAVING NOT coalesce(bool_or(s.partner_id = c.owner_partner_id), false)
           AND t.segment = ANY(insights_segments(min(s.first_purchase_at),
                max(s.last_purchase_at), sum(s.purchases)::integer, p.rfm_monetary, chosen_at))
    """


FUNCTIONS = [
    # May the caller manage this campaign (inside a function run as the owner)?
    f"""
    CREATE FUNCTION insights_may_manage(target bigint) RETURNS boolean LANGUAGE sql
    STABLE {OWNER} AS $$
        SELECT NOT {API_CALLER} OR {OPERATOR} OR EXISTS (
            SELECT 1 FROM campaign c WHERE c.id = target AND {IS_PARTNER}
              AND (c.owner_partner_id = exchange_principal_partner()
                   OR EXISTS (SELECT 1 FROM campaign_funding f WHERE f.campaign_id = c.id
                              AND f.partner_id = exchange_principal_partner())))
    $$
    """,
    # A target's selection, once: each member of its audience held out at random with the
    # control share (recorded), an offer for each of the others; (treated, control).
    f"""
    CREATE FUNCTION insights_select_audience(target bigint, chosen_at timestamptz,
                                             expires timestamptz)
    RETURNS TABLE (treated integer, control integer) LANGUAGE plpgsql {OWNER} AS $$
    #variable_conflict use_column
    BEGIN
        IF NOT insights_may_manage(target) THEN
            RAISE EXCEPTION 'campaign % is not the caller''s', target
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN QUERY
        WITH chosen AS (
            INSERT INTO campaign_selection (campaign_id, member_id, control, selected_at)
            SELECT t.campaign_id, a.member_id, random() < t.control_share, chosen_at
            FROM campaign_target t JOIN campaign c ON c.id = t.campaign_id
            CROSS JOIN LATERAL ({_audience()}) a
            WHERE t.campaign_id = target AND t.selected_at IS NULL
            RETURNING member_id, campaign_selection.control AS held_out
        ), offered AS (
            INSERT INTO offer (campaign_id, member_id, title, description, status,
                               created_at, expires_at)
            SELECT target, ch.member_id, t.offer_title, t.offer_description, 'AVAILABLE',
                   chosen_at, expires
            FROM chosen ch JOIN campaign_target t ON t.campaign_id = target
            WHERE NOT ch.held_out
            RETURNING 1
        ), counted AS (
            UPDATE campaign_target SET selected_at = chosen_at,
                treated = (SELECT count(*) FROM offered),
                control = (SELECT count(*) FROM chosen WHERE held_out)
            WHERE campaign_id = target
            RETURNING campaign_target.treated, campaign_target.control
        )
        SELECT counted.treated, counted.control FROM counted;
    END $$
    """,
    # The report's outcome: per group, members, those who bought at the owner (anywhere
    # for an operator's campaign) in [start, finish), their spend, and the offers
    # activated. Counts only.
    f"""
    CREATE FUNCTION insights_campaign_outcome(target bigint, start timestamptz,
                                              finish timestamptz)
    RETURNS TABLE (control boolean, members integer, purchasers integer, spend numeric,
                   activated integer)
    LANGUAGE plpgsql STABLE {OWNER} AS $$
    #variable_conflict use_column
    BEGIN
        IF NOT insights_may_manage(target) THEN
            RAISE EXCEPTION 'campaign % is not the caller''s', target
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN QUERY
        SELECT s.control, count(*)::integer,
               count(*) FILTER (WHERE b.spend IS NOT NULL)::integer,
               coalesce(sum(b.spend), 0)::numeric,
               count(o.id) FILTER (WHERE o.status IN ('ACTIVATED', 'USED'))::integer
        FROM campaign_selection s JOIN campaign c ON c.id = s.campaign_id
        LEFT JOIN offer o ON o.campaign_id = s.campaign_id AND o.member_id = s.member_id
        LEFT JOIN LATERAL (
            SELECT sum(p.amount) AS spend FROM purchase p
            WHERE p.member_id = s.member_id AND p.occurred_at >= start
              AND p.occurred_at < finish
              AND (c.owner_partner_id IS NULL OR p.partner_id = c.owner_partner_id)
            HAVING count(*) > 0
        ) b ON true
        WHERE s.campaign_id = target
        GROUP BY s.control;
    END $$
    """,
    # An activated offer is USED by the member's next purchase where it applies.
    f"""
    CREATE FUNCTION insights_use_offers() RETURNS trigger LANGUAGE plpgsql {OWNER} AS $$
    BEGIN
        UPDATE offer o SET status = 'USED', used_at = NEW.occurred_at
        FROM campaign c
        WHERE o.member_id = NEW.member_id AND o.status = 'ACTIVATED'
          AND c.id = o.campaign_id
          AND (c.owner_partner_id IS NULL OR c.owner_partner_id = NEW.partner_id)
          AND NEW.occurred_at >= o.activated_at;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER purchase_uses_offers AFTER INSERT ON purchase
    FOR EACH ROW EXECUTE FUNCTION insights_use_offers()
    """,
    # offer.created and offer.activated: the member's events (every partner it is
    # linked to hears them, by its own memberRef), like member.tier_changed.
    f"""
    CREATE FUNCTION events_from_offers() RETURNS trigger LANGUAGE plpgsql {OWNER} AS $$
    BEGIN
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
        SELECT 'offer.created', o.created_at, NULL, o.member_id,
               jsonb_strip_nulls(jsonb_build_object('offer', o.id, 'title', o.title,
                   'expiresAt', o.expires_at))
        FROM created o;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER offer_events AFTER INSERT ON offer
    REFERENCING NEW TABLE AS created FOR EACH STATEMENT EXECUTE FUNCTION events_from_offers()
    """,
    f"""
    CREATE FUNCTION events_from_offer_activations() RETURNS trigger LANGUAGE plpgsql {OWNER}
    AS $$
    BEGIN
        INSERT INTO event_outbox (type, occurred_at, partner_id, member_id, facts)
        VALUES ('offer.activated', NEW.activated_at, NULL, NEW.member_id,
                jsonb_build_object('offer', NEW.id, 'title', NEW.title));
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER offer_activation_events AFTER UPDATE OF status ON offer
    FOR EACH ROW WHEN (NEW.status = 'ACTIVATED' AND OLD.status = 'AVAILABLE')
    EXECUTE FUNCTION events_from_offer_activations()
    """,
]


def policies(table: str, *definitions: str) -> list[str]:
    return [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"] + [
        f"CREATE POLICY {definition}".replace("{table}", table) for definition in definitions
    ]


OWN_SEGMENT = (
    f"{OPERATOR} OR ({IS_PARTNER} AND {{table}}.owner_partner_id = exchange_principal_partner())"
)
TARGET = f"{OPERATOR} OR exchange_sees_campaign({{table}}.campaign_id)"
SECURITY = [
    "GRANT SELECT, INSERT ON segment, campaign_target TO exchange_api",
    "GRANT SELECT, UPDATE ON offer TO exchange_api",
    "GRANT USAGE, SELECT ON segment_id_seq TO exchange_api",
    "REVOKE ALL ON campaign_selection FROM exchange_api",
    *policies(
        "segment", f"own_rows ON {{table}} FOR ALL USING ({OWN_SEGMENT}) WITH CHECK ({OWN_SEGMENT})"
    ),
    *policies(
        "campaign_target", f"own_rows ON {{table}} FOR ALL USING ({TARGET}) WITH CHECK ({TARGET})"
    ),
    *policies("offer", f"own_rows ON {{table}} FOR ALL USING ({MEMBERS}) WITH CHECK ({MEMBERS})"),
    "ALTER TABLE campaign_selection ENABLE ROW LEVEL SECURITY",
    *[
        statement
        for function in (
            "insights_select_audience(bigint, timestamptz, timestamptz)",
            "insights_campaign_outcome(bigint, timestamptz, timestamptz)",
        )
        for statement in (
            f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC",
            f"GRANT EXECUTE ON FUNCTION {function} TO exchange_api",
        )
    ],
]


def upgrade() -> None:
    connection = op.get_bind()
    for statement in (*PROFILES, *TABLES, *FUNCTIONS, *SECURITY):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
