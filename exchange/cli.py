"""The ``exchange`` command. Every subcommand has ``--help``; bad arguments print one line
on stderr and exit with status 2; a failure prints one line and exits with status 1;
no traceback ever reaches the user."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from exchange import audit, delivery, ledger
from exchange.audit import Action, Actor
from exchange.events import repository as events_repository
from exchange.insights import privacy, profiles
from exchange.kit import limits, logs
from exchange.kit.clock import utc_now
from exchange.kit.currency import check_currency
from exchange.kit.db import Connection, Database, resolve_database_url
from exchange.kit.errors import DomainError, InvalidInput, Kind, Ref
from exchange.kit.settings import Settings, default_home
from exchange.kit.system import SYSTEM
from exchange.ledger.invariants import CheckResult
from exchange.loyalty import campaigns as campaign_rules
from exchange.loyalty import tiers
from exchange.loyalty.models import Campaign, CampaignStatus
from partners import clients, identity, registry
from partners import keys as key_store
from partners import repository as partner_repository
from partners.identity import IdentityKeys
from partners.models import ContractChanges, ContractTerms, FundingModel, Partner, PartnerStatus
from partners.scopes import OPERATOR_SCOPES, PARTNER_SCOPES
from settlement import reconciliation as settlement_reconciliation
from settlement import reports as settlement_reports
from settlement import service as settlement_service
from settlement.models import RunSummary, SettlementRun

if TYPE_CHECKING:  # imported where it is used, as every developer tool
    from exchange.devtools.demo import DemoSummary


class UsageError(Exception):
    """Bad arguments: exit status 2."""


class Failure(Exception):
    """A command that could not do its work for a reason it can say: exit status 1."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, e.g. {value}+00:00")
    return moment


def _epilog() -> str:
    return f"""\
settings (environment variables, or a .env file in the working directory):
  DATABASE_URL         the PostgreSQL to use (unset: a private embedded PostgreSQL
                       in EXCHANGE_HOME, started on demand)
  EXCHANGE_HOME        data directory: the embedded database, the generated secret
                       key, demo credentials (default: {default_home()})
  EXCHANGE_SECRET_KEY  pepper of identity blind indexes and key encryption; every
                       process sharing a database needs the same (unset: generated
                       into EXCHANGE_HOME)
  more (EXCHANGE_PUBLIC_URL, EXCHANGE_LOG_FORMAT, ...): README.md, "The command"

documentation (in the repository): README.md (start here: run, call, settle, every
command), docs/api.md (the GraphQL API, its errors and limits), docs/operations.md
(audit log, logs, row-level security), docs/decisions/ (why it is built this way).
Every command has --help."""


def _json_flag(parser: argparse.ArgumentParser, dest: str = "json", what: str = "") -> None:
    parser.add_argument(
        "--json", dest=dest, action="store_true", help=what or "print JSON instead of text"
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="exchange",
        description="The coalition points exchange: serve the API, run settlement, manage"
        " partners, clients and members.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=Parser, metavar="COMMAND"
    )
    _serve_command(commands)
    database = commands.add_parser("db", help="the database schema")
    database_commands = database.add_subparsers(
        dest="db_command", required=True, parser_class=Parser
    )
    database_commands.add_parser("upgrade", help="apply every migration")
    verify = commands.add_parser("verify", help="check every ledger invariant (exit 1 on a breach)")
    _json_flag(verify, what="print {ok, checks} as JSON")
    _partner_commands(commands)
    _client_commands(commands)
    _member_commands(commands)
    _loyalty_commands(commands)
    _insights_commands(commands)
    _events_commands(commands)
    keys = commands.add_parser("keys", help="access-token signing keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, parser_class=Parser)
    keys_commands.add_parser("rotate", help="retire the active key and promote the next one")
    _settle_commands(commands)
    _report_commands(commands)
    _audit_commands(commands)
    _bench_commands(commands)
    expire = commands.add_parser("expire", help="expire lots and release expired holds")
    expire.add_argument("--as-of", type=_timestamp, help="ISO 8601 time with offset (default: now)")
    _json_flag(expire, what="print a summary as JSON")
    return parser


def _serve_command(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="migrate the database and serve the API",
        description="Migrate the database, then serve the API (GraphQL at /graphql, OAuth"
        " at /oauth/token) over HTTP; every minute it expires lots, releases expired holds"
        " and reviews tiers. Logs go to stderr (EXCHANGE_LOG_FORMAT=text or json).",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="TCP port, 1 to 65535 (default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, 1 to 64 (default: %(default)s)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed a small demo coalition first and print working credentials",
    )
    serve.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop; asyncio to measure what uvloop brings (default: %(default)s)",
    )
    serve.add_argument(
        "--http",
        choices=["httptools", "h11"],
        default="httptools",
        help="HTTP parser; h11 (pure Python) to measure what httptools brings"
        " (default: %(default)s)",
    )


def _report_commands(commands: Any) -> None:
    payment = commands.add_parser("payment", help="record a paid settlement instruction")
    payment.add_argument("run", type=int, help="the settlement run's number")
    payment.add_argument("instruction", type=int, help="its number in the run, from 1")
    payment.add_argument("--reference", required=True, help="the bank transfer's reference")
    report = commands.add_parser("report", help="export a settlement run")
    report.add_argument("run", type=int, help="the settlement run's number")
    report.add_argument(
        "--format",
        choices=["json", "csv", "html", "beancount"],
        required=True,
        help="json: the whole run; csv: a table; html: the report with charts; beancount:"
        " the money journal and payments",
    )
    report.add_argument(
        "--out",
        required=True,
        type=_output_file,
        metavar="FILE",
        help="file to write, in a directory that exists ('-' for stdout)",
    )
    report.add_argument(
        "--partner", metavar="NAME", help="one partner's statement instead of the coalition summary"
    )
    report.add_argument(
        "--table",
        choices=["summary", "instructions"],
        help="with --format csv: the coalition summary (default) or the payment instructions"
        " (numbered, with their payments)",
    )


def _settle_commands(commands: Any) -> None:
    settle = commands.add_parser(
        "settle",
        help="run settlement for a period [from, to); 'settle list' lists the runs",
        description="Run settlement for a period [from, to): a DRAFT run (rerun freely; the"
        " previous draft of the period is superseded), or FINALIZED with --finalize."
        " 'exchange settle list' lists every run.",
    )
    settle.add_argument(
        "--from",
        dest="start",
        type=_day_or_time,
        help="the start, included: YYYY-MM-DD (midnight UTC) or ISO 8601 with offset (required)",
    )
    settle.add_argument(
        "--to", dest="end", type=_day_or_time, help="the end, excluded; the same forms (required)"
    )
    settle.add_argument(
        "--currency",
        type=_currency,
        help="ISO 4217 settlement currency (needed when partners' currencies differ)",
    )
    settle.add_argument(
        "--rate",
        action="append",
        default=[],
        type=_rate,
        metavar="CUR=RATE",
        help="exchange rate for the period, 1 CUR = RATE units of the settlement currency"
        " (e.g. EUR=1.08); repeat per currency (default: none)",
    )
    settle.add_argument(
        "--finalize", action="store_true", help="finalize the run: close the period for good"
    )
    _json_flag(settle, what="print the run (number, status, digest, document) as JSON")
    settle_commands = settle.add_subparsers(
        dest="settle_command", required=False, parser_class=Parser, title="optional sub-command"
    )
    listing = settle_commands.add_parser(
        "list",
        help="every run, newest first",
        description="Every settlement run, newest first, superseded drafts included: its"
        " period, status, currency, digest, paid instructions, and which run supersedes"
        " which.",
    )
    _json_flag(listing, dest="list_json", what="print a JSON array")
    listing.add_argument(
        "--limit",
        dest="list_limit",
        type=int,
        default=100,
        help="at most this many runs (default: %(default)s)",
    )


def _bench_commands(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="load a running server over HTTP and measure",
        description="Load a running server over HTTP with a mix of operations and report"
        " throughput, latency percentiles and errors. Without --seeded it first creates"
        " bench partners and members; 'exchange bench seed' fills a database at scale.",
    )
    bench.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the server to load (default: %(default)s)"
    )
    bench.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="requests in flight at once, 1 to 1024 (default: %(default)s)",
    )
    bench.add_argument(
        "--duration", type=float, default=10.0, help="seconds of load (default: %(default)s)"
    )
    _bench_population(bench)
    bench.add_argument(
        "--mix",
        default="earn=45,redeem=35,wallet=20",
        help="comma-separated NAME=WEIGHT pairs, weights as whole numbers (relative shares,"
        " not percents), names among earn, redeem, wallet, bulk (an earnPointsBatch of"
        " 1,000 items), ndjson (POST /bulk/earn of 5,000 NDJSON items), purchase"
        " (recordPurchase of 1 to 3 items), preview (previewPurchase) and insights (a"
        " member's segments and profile) (default: %(default)s)",
    )
    bench.add_argument(
        "--campaigns",
        type=int,
        default=50,
        help="active campaigns per partner, of mixed conditions, when the mix has purchase or"
        " preview, 0 to 1,000 (default: %(default)s)",
    )
    bench.add_argument(
        "--seeded",
        action="store_true",
        help="use the partners and members of 'exchange bench seed' (new clients; --members"
        " random seeded members, linked to every seed partner) instead of creating any",
    )
    bench.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="the server's process id, for its CPU per operation (default: the local process"
        " listening on the URL's port, when the URL is on this machine)",
    )
    bench.add_argument(
        "--webhook",
        action="store_true",
        help="while the load runs, deliver every event to a receiver on loopback (an operator"
        " endpoint for every type, deleted afterwards; the server needs"
        " EXCHANGE_WEBHOOK_ALLOW_PRIVATE=true) (default: no endpoint)",
    )
    _json_flag(bench, what="print the measurements as JSON")
    _bench_subcommands(bench)


def _bench_population(bench: Any) -> None:
    """Who the bench loads the server as: partners, their clients, members."""
    bench.add_argument(
        "--partners",
        type=int,
        default=1,
        help="bench partners to create, 1 to 500 (default: %(default)s)",
    )
    bench.add_argument(
        "--clients",
        type=int,
        default=1,
        help="OAuth clients per partner, requests spread over them at random, 1 to 64: one"
        " client's query-cost budget caps it near 400 mutations a second (default: %(default)s)",
    )
    bench.add_argument(
        "--members",
        type=int,
        default=1000,
        help="members to create, or with --seeded to pick, 1 to 1,000,000 (default: %(default)s)",
    )


def _bench_subcommands(bench: Any) -> None:
    sub = bench.add_subparsers(
        dest="bench_command", required=False, parser_class=Parser, title="optional sub-command"
    )
    _bench_seed_command(sub)


def _bench_seed_command(sub: Any) -> None:
    seed = sub.add_parser(
        "seed",
        help="fill the database with members and a points history at scale",
        description="Fill the database (DATABASE_URL, or the embedded one under"
        " EXCHANGE_HOME) with seed partners seed-0..., members linked by refs seed-<n>, and"
        " earn and redeem entries over the last 60 days; prints progress to stderr and the"
        " settlement period that covers them. Refuses a database that is already seeded"
        " (--resume goes on with the purchases of one that was stopped).",
    )
    seed.add_argument(
        "--members",
        dest="seed_members",
        type=int,
        required=True,
        metavar="N",
        help="members to create",
    )
    seed.add_argument(
        "--entries",
        dest="seed_entries",
        type=int,
        required=True,
        metavar="M",
        help="ledger entries to book, 30%% of them redemptions",
    )
    seed.add_argument(
        "--partners",
        dest="seed_partners",
        type=int,
        default=10,
        metavar="P",
        help="seed partners to create (default: %(default)s)",
    )
    seed.add_argument(
        "--purchases",
        dest="seed_purchases",
        type=int,
        default=0,
        metavar="N",
        help="purchases recorded by the loyalty engine after the history (default: %(default)s)",
    )
    seed.add_argument(
        "--resume",
        dest="seed_resume",
        action="store_true",
        help="go on with the purchases of a seed stopped the same day, given the same counts",
    )
    _json_flag(seed, dest="seed_json", what="print the summary as JSON")
    hooks = sub.add_parser(
        "webhooks",
        help="webhook delivery throughput to a local receiver",
        description="Book N earns for a bench partner whose endpoint (every event type) is a"
        " receiver on loopback, then deliver them with one worker; prints events/s.",
    )
    hooks.add_argument("--events", dest="hook_events", type=int, default=5000,
                       help="events to deliver (default: %(default)s)")  # fmt: skip
    _json_flag(hooks, dest="hook_json", what="print the result as JSON")


def _audit_commands(commands: Any) -> None:
    log = commands.add_parser("audit", help="the audit log of operator actions")
    sub = log.add_subparsers(dest="audit_command", required=True, parser_class=Parser)
    listing = sub.add_parser("list", help="operator actions, newest first")
    listing.add_argument(
        "--since",
        type=_day_or_time,
        help="only actions from then on: YYYY-MM-DD (midnight UTC) or ISO 8601 with offset",
    )
    listing.add_argument(
        "--action",
        choices=[str(action) for action in Action],
        metavar="ACTION",
        help="only this action: " + ", ".join(str(action) for action in Action),
    )
    listing.add_argument(
        "--limit",
        type=int,
        default=100,
        help="at most this many entries, 1 to 10,000 (default: %(default)s)",
    )
    _json_flag(listing, what="print a JSON array")


def _partner_commands(commands: Any) -> None:
    partner = commands.add_parser("partner", help="the partner registry")
    sub = partner.add_subparsers(dest="partner_command", required=True, parser_class=Parser)
    add = sub.add_parser("add", help="add a partner with its first contract")
    add.add_argument("name", help="the partner's name, unique in the coalition")
    add.add_argument(
        "--currency",
        required=True,
        type=_currency,
        help="its settlement currency, an ISO 4217 code with a minor unit, e.g. USD",
    )
    _contract_terms(add, first=True)
    add.add_argument(
        "--allow-negative-reversal",
        action="store_true",
        help="let a reversal of an earn whose points were spent take the wallet below zero",
    )
    _json_flag(add, what="print the partner as JSON")
    contract = sub.add_parser(
        "contract",
        help="a new contract version from a date; terms left out stay as they are",
        description="A new version of a partner's contract, in force from --effective-from"
        " (now or later: past periods keep the terms in force then).",
    )
    contract.add_argument("name", help="the partner's name")
    contract.add_argument("--effective-from", required=True, type=_day_or_time,
                          help="YYYY-MM-DD (midnight UTC) or ISO 8601 with offset")  # fmt: skip
    _contract_terms(contract, first=False)
    _json_flag(contract, what="print the partner as it will be, as JSON")
    listing = sub.add_parser("list", help="every partner with its contract in force")
    _json_flag(listing, what="print a JSON array")
    for verb in ("suspend", "activate"):
        status = sub.add_parser(verb, help=f"{verb} a partner (its tokens stop or resume)")
        status.add_argument("name", help="the partner's name")


def _contract_terms(parser: argparse.ArgumentParser, *, first: bool) -> None:
    """A contract's terms: a new partner's (``first``: prices required, a default for
    the rest) or a new version's (each optional; a term left out stays as it is)."""
    kept = "" if first else " (default: unchanged)"
    shown = " (default: %(default)s)" if first else kept

    def default(value: object) -> dict[str, Any]:
        return {"default": value} if first else {}

    parser.add_argument("--issue-price", type=_decimal, required=first, metavar="PRICE",
                        help="money per point issued, in the partner's currency units,"
                        " e.g. 0.010" + kept)  # fmt: skip
    parser.add_argument("--redemption-price", type=_decimal, required=first, metavar="PRICE",
                        help="money per point redeemed at the partner, in its currency"
                        " units, e.g. 0.008" + kept)  # fmt: skip
    parser.add_argument("--fee-rate", type=_decimal, metavar="FRACTION", **default(Decimal("0")),
                        help="the coalition's fee on what an ON_REDEMPTION issuer owes for"
                        " its redeemed points: a fraction like 0.02 (= 2 percent), not a"
                        " percent" + shown)  # fmt: skip
    parser.add_argument("--funding", choices=["PREFUNDED", "ON_REDEMPTION"],
                        **default("PREFUNDED"),
                        help="PREFUNDED: the partner pays the coalition when it issues points;"
                        " ON_REDEMPTION: it pays where they are redeemed" + shown)  # fmt: skip
    parser.add_argument("--points-lifetime-days", type=int, metavar="DAYS", **default(365),
                        help="days an earned point lives before it expires" + shown)  # fmt: skip
    parser.add_argument("--credit-limit", type=int, metavar="POINTS",
                        help="cap on the partner's outstanding issued points"
                        + (" (default: no cap)" if first else kept))  # fmt: skip
    parser.add_argument("--earn-rate", type=_decimal, metavar="RATE", **default(Decimal("1")),
                        help="points per currency unit of a purchase" + shown)  # fmt: skip
    parser.add_argument("--max-points-per-operation", type=int, metavar="POINTS",
                        **default(1_000_000),
                        help="the most points one operation may move" + shown)  # fmt: skip


def _client_commands(commands: Any) -> None:
    client = commands.add_parser("client", help="OAuth clients")
    sub = client.add_subparsers(dest="client_command", required=True, parser_class=Parser)
    add = sub.add_parser("add", help="create a client; prints its secret once")
    owner = add.add_mutually_exclusive_group(required=True)
    owner.add_argument("--partner", metavar="NAME", help="a client of this partner")
    owner.add_argument("--operator", action="store_true", help="an operator's client")
    add.add_argument(
        "--scopes",
        required=True,
        help='space-separated, e.g. "points:earn points:redeem"; a partner may have '
        + " ".join(sorted(PARTNER_SCOPES))
        + ", an operator "
        + " ".join(sorted(OPERATOR_SCOPES)),
    )
    add.add_argument(
        "--jwks",
        metavar="FILE",
        help="a JSON Web Key Set of its public keys: it authenticates with private_key_jwt"
        " and gets no secret (default: a client secret)",
    )
    _json_flag(add, what="print client_id, client_secret and scope as JSON")
    revoke = sub.add_parser("revoke", help="revoke a client; its tokens stop working")
    revoke.add_argument("client_id", help="the client's id (pt_... or op_...)")


def _member_commands(commands: Any) -> None:
    member = commands.add_parser("member", help="an operator's GDPR tools")
    sub = member.add_subparsers(dest="member_command", required=True, parser_class=Parser)
    find = sub.add_parser(
        "find",
        help="the member id of an e-mail or a phone, for export and erase",
        description="Look a member up by e-mail or phone (through the blind index: nothing"
        " is decrypted) and print its internal id, since when it is known and which"
        " partners linked it when. Recorded in the audit log (without the contact).",
    )
    contact = find.add_mutually_exclusive_group(required=True)
    contact.add_argument("--email", metavar="E", help="the member's e-mail address")
    contact.add_argument(
        "--phone", metavar="P", help="the member's phone, in international form: +14155550123"
    )
    _json_flag(find, what="print {memberId, since, links} as JSON")
    export = sub.add_parser("export", help="what we hold about one member, decrypted")
    export.add_argument("member_id", type=int, help="the internal member id (see 'member find')")
    erase = sub.add_parser("erase", help="destroy a member's identity; the ledger stays")
    erase.add_argument("member_id", type=int, help="the internal member id (see 'member find')")
    consent = sub.add_parser(
        "consent", help="record a member's consent to cross-partner use (audited)"
    )
    consent.add_argument("member_id", type=int, help="the internal member id (see 'member find')")
    consent.add_argument(
        "--cross-partner",
        choices=["on", "off"],
        required=True,
        help="on: the member consents to cross-partner use of its purchases; off: withdrawn",
    )


def _insights_commands(commands: Any) -> None:
    insights = commands.add_parser(
        "insights",
        help="member insights: KPIs as a report, RFM refresh",
        description="`exchange insights --from DATE --to DATE [--partner NAME] --format"
        " html|json|csv --out FILE` writes the KPIs and charts of a window; `exchange"
        " insights refresh` recomputes RFM quintiles (serve does it every"
        " EXCHANGE_RFM_REFRESH_MINUTES).",
    )
    insights.add_argument(
        "--from", dest="start", type=_day_or_time, help="the window's start: DATE or TIME (UTC)"
    )
    insights.add_argument(
        "--to", dest="end", type=_day_or_time, help="the window's end, excluded: DATE or TIME"
    )
    insights.add_argument(
        "--partner", help="one partner's figures, by name (default: every partner's)"
    )
    insights.add_argument(
        "--format",
        choices=["html", "json", "csv"],
        default="html",
        help="html (charts as inline SVG), json or csv (default: %(default)s)",
    )
    insights.add_argument("--out", type=Path, help="the file to write (required for a report)")
    sub = insights.add_subparsers(dest="insights_command", required=False, parser_class=Parser)
    sub.add_parser("refresh", help="recompute every RFM quintile, set-based")


def _loyalty_commands(commands: Any) -> None:
    tier = commands.add_parser("tier", help="the coalition's tiers")
    sub = tier.add_subparsers(dest="tier_command", required=True, parser_class=Parser)
    put = sub.add_parser(
        "set",
        help="create or change a tier",
        description="A tier members reach with N qualifying points (points earned from"
        " purchases over the rolling window, EXCHANGE_TIER_WINDOW_MONTHS, default 12); its"
        " earn multiplier M gives a TIER award of floor(base x (M - 1)), paid by the"
        " coalition.",
    )
    put.add_argument("name", help="the tier's name, e.g. Gold")
    put.add_argument("--qualifying-points", type=int, required=True, metavar="N",
                     help="qualifying points that reach it (0: every member)")  # fmt: skip
    put.add_argument("--earn-multiplier", type=_decimal, required=True, metavar="M",
                     help="from 1 (no bonus) to 10; 1.25 = earn 1.25x")  # fmt: skip
    listing = sub.add_parser("list", help="every tier, lowest first, with its members")
    _json_flag(listing, what="print a JSON array")
    review = sub.add_parser(
        "review",
        help="downgrade members below their tier at the last month end past its grace period",
        description="What the server's sweep does every minute: members measured at the"
        " last month end whose grace period (EXCHANGE_TIER_GRACE_DAYS, default 30) has"
        " passed go down to the tier their qualifying points reach.",
    )
    review.add_argument("--as-of", type=_timestamp, help="ISO 8601 time with offset (default: now)")
    campaign = commands.add_parser("campaign", help="campaigns across the coalition")
    campaign_sub = campaign.add_subparsers(
        dest="campaign_command", required=True, parser_class=Parser
    )
    campaigns = campaign_sub.add_parser("list", help="every campaign, newest first")
    campaigns.add_argument(
        "--status",
        choices=[str(s) for s in CampaignStatus],
        help="only campaigns in this status (default: every status)",
    )
    _json_flag(campaigns, what="print a JSON array")


def _events_commands(commands: Any) -> None:
    events = commands.add_parser(
        "events",
        help="partner events: webhook endpoints and deliveries",
        description="Webhook endpoints and their deliveries (partners manage their own over"
        " GraphQL; docs/api.md, 'Webhooks').",
    )
    sub = events.add_subparsers(dest="events_command", required=True, parser_class=Parser)
    listing = sub.add_parser("list", help="deliveries, newest first")
    listing.add_argument(
        "--status",
        choices=["PENDING", "DELIVERED", "FAILED"],
        help="only deliveries in this state (default: every state)",
    )
    listing.add_argument(
        "--endpoint", type=int, metavar="ID", help="one endpoint's only (default: every one)"
    )
    listing.add_argument(
        "--limit", type=int, default=50, help="at most this many, 1 to 1000 (default: %(default)s)"
    )
    _json_flag(listing, what="print a JSON array")
    endpoints = sub.add_parser("endpoints", help="every webhook endpoint and its state")
    _json_flag(endpoints, what="print a JSON array")
    stats = sub.add_parser("stats", help="deliveries pending, delivered and failed")
    _json_flag(stats, what="print the counts as JSON")
    again = sub.add_parser("redeliver", help="send a delivery again (same webhook-id)")
    again.add_argument("delivery_id", type=int, help="the delivery's number (exchange events list)")
    deliver = sub.add_parser(
        "deliver",
        help="run a delivery worker in this process (beside or instead of the server's)",
        description="Deliver webhooks until interrupted; several workers may run at once"
        " (no event is sent twice at the same time). --once: deliver what is due, then stop.",
    )
    deliver.add_argument(
        "--once", action="store_true", help="deliver what is due, then stop (default: run on)"
    )


def _day_or_time(value: str) -> datetime:
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {value!r}") from None
    return _timestamp(value)


def _currency(value: str) -> str:
    try:
        return check_currency(value, "currency")
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _rate(value: str) -> tuple[str, Decimal]:
    currency, equals, rate = value.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"expected CUR=RATE, like EUR=1.08: {value!r}")
    try:
        return _currency(currency), limits.decimal(rate, f"the rate of {currency}")
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _output_file(value: str) -> str:
    """``--out``: '-' (stdout), or a file in a directory that exists, checked before any
    work is done; writing it may still fail (:func:`_write`)."""
    if value == "-":
        return value
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory; name a file in it")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {path.parent}")
    return value


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {value!r}") from None


def _database(settings: Settings) -> Database:
    """The database, migrated to the latest revision (a no-op when it already is)."""
    from exchange.migrations import upgrade_sync

    url = resolve_database_url(settings)
    upgrade_sync(url)
    return Database(url, pool_size=2)


def _operator() -> Actor:
    """The operator at this terminal, as the audit log names them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        user = "unknown"
    return Actor(id=f"cli:{user}@{socket.gethostname()}", origin="cli")


async def _audit(
    conn: Connection,
    action: Action,
    subject: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record the operator's change in its own transaction (no secret in ``details``)."""
    await audit.record(conn, actor=_operator(), action=action, subject=subject, details=details)


def _run(coroutine_function: Callable[[Database], Coroutine[Any, Any, int]]) -> int:
    database = _database(Settings.from_environment())

    async def main() -> int:
        try:
            return await coroutine_function(database)
        finally:
            await database.dispose()

    return asyncio.run(main())


def command_db_upgrade(args: argparse.Namespace) -> int:
    from exchange.migrations import upgrade_sync

    upgrade_sync(resolve_database_url(Settings.from_environment()))
    print("database is at the latest revision")
    return 0


def command_verify(args: argparse.Namespace) -> int:
    async def verify(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            report = await ledger.verify(conn)
        async with database.transaction(SYSTEM) as conn:
            settled = await settlement_reconciliation.verify(conn)
        report = ledger.VerifyReport(
            checks=[*report.checks, *(CheckResult(c.name, c.ok, c.examples) for c in settled)]
        )
        if args.json:
            print(json.dumps({"ok": report.ok, "checks": [c.__dict__ for c in report.checks]}))
        else:
            for check in report.checks:
                print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}")
                for example in check.examples:
                    print(f"        e.g. {example}")
            print("all invariants hold" if report.ok else "LEDGER INVARIANTS BROKEN")
        return 0 if report.ok else 1

    return _run(verify)


def command_expire(args: argparse.Namespace) -> int:
    as_of: datetime = args.as_of or utc_now()

    async def expire(database: Database) -> int:
        released = members = points = 0
        while True:
            async with database.transaction(SYSTEM) as conn:
                count = await ledger.release_holds_batch(conn, as_of=as_of)
            released += count
            if count == 0:
                break
        while True:
            async with database.transaction(SYSTEM) as conn:
                batch = await ledger.expire_batch(conn, as_of=as_of)
            if batch.members == 0:
                break
            members += batch.members
            points += batch.points
            if not args.json:
                print(f"… {members} members, {points} points expired", file=sys.stderr)
        summary = {
            "asOf": as_of.isoformat(),
            "holdsReleased": released,
            "members": members,
            "pointsExpired": points,
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"released {released} expired holds; expired {points} points"
                f" of {members} members as of {as_of.isoformat()}"
            )
        return 0

    return _run(expire)


def command_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from exchange.http.server import PROTOCOLS
    from exchange.migrations import upgrade_sync

    if not 1 <= args.port <= 65535:
        raise UsageError("--port must be between 1 and 65535")
    if not 1 <= args.workers <= 64:
        raise UsageError("--workers must be between 1 and 64")
    settings = Settings.from_environment()
    logs.configure(settings.log_format)  # once; uvicorn applies the same to every worker
    url = resolve_database_url(settings)
    upgrade_sync(url)
    where = "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.home}"
    print(f"database: {where} (migrated)")
    public_url = settings.public_url
    if "EXCHANGE_PUBLIC_URL" not in os.environ:
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
        public_url = f"http://{host}:{args.port}"
        os.environ["EXCHANGE_PUBLIC_URL"] = public_url
    if args.demo:
        _seed_demo(url, settings, public_url)
    os.environ["DATABASE_URL"] = url  # workers join the same database
    print(f"serving {public_url}/  (health: /healthz, readiness: /readyz)")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.run(
        "exchange.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        log_config=logs.config(settings.log_format),
        loop=args.loop,
        http=PROTOCOLS[args.http],
        access_log=False,
    )
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    """SIGTERM ends ``serve`` through the interpreter's exit, as SIGINT does: uvicorn
    shuts down gracefully and then raises the signal again, and with SIGTERM's default
    action the process ended there, before its exit handlers stopped the embedded
    PostgreSQL (a process manager's stop left it running)."""
    raise SystemExit(128 + signum)


def _seed_demo(url: str, settings: Settings, public_url: str) -> None:
    from exchange.devtools.demo import seed

    async def run() -> None:
        database = Database(url, pool_size=1)
        try:
            async with database.transaction(SYSTEM) as conn:
                summary = await seed(
                    conn,
                    now=utc_now(),
                    keys=IdentityKeys.from_secret(settings.secret_key()),
                    home=settings.ensure_home(),
                )
        finally:
            await database.dispose()
        state = "seeded" if summary.seeded else "already seeded"
        print(
            f"demo coalition {state}: "
            + ", ".join(f"{name} (partner {pid})" for name, pid in summary.partners.items())
        )
        print(demo_credentials_heading(summary))
        for credential in summary.credentials:
            print(
                f"  {credential['who']}: client_id={credential['client_id']}"
                f" client_secret={credential['client_secret']}"
            )
        [partner] = [c for c in summary.credentials if c["role"] == "partner"]
        print("first request: a token, then earn 100 points for the demo member 'alice'")
        for line in first_request(partner, public_url):
            print(f"  {line}")
        print(
            "a member token for 'alice' (token exchange with scope=\"wallet:read"
            ' wallet:transfer") and the scope every call needs: docs/api.md section 7'
        )
        if summary.seeded:
            start, end = summary.last_month
            print(f"settle last month's demo history: exchange settle --from {start} --to {end}")

    asyncio.run(run())


def _partner_json(partner: Partner) -> dict[str, Any]:
    terms = partner.contract.terms
    return {
        "id": partner.id,
        "name": partner.name,
        "status": str(partner.status),
        "contractVersion": partner.contract.version,
        "currency": terms.currency,
        "issuePrice": str(terms.issue_price),
        "redemptionPrice": str(terms.redemption_price),
        "feeRate": str(terms.fee_rate),
        "funding": str(terms.funding_model),
        "pointsLifetimeDays": terms.points_lifetime_days,
        "creditLimitPoints": terms.credit_limit_points,
        "allowNegativeReversal": terms.allow_negative_reversal,
        "earnRate": str(terms.earn_rate),
        "maxPointsPerOperation": terms.max_points_per_operation,
    }


async def _amend(conn: Any, args: argparse.Namespace, now: datetime) -> Partner:
    """``exchange partner contract``: the partner as it will be once the change is in force."""
    partner = await registry.get_partner(conn, name=args.name, now=now)
    changes = ContractChanges(
        earn_rate=args.earn_rate,
        issue_price=args.issue_price,
        redemption_price=args.redemption_price,
        fee_rate=args.fee_rate,
        funding_model=FundingModel(args.funding) if args.funding else None,
        points_lifetime_days=args.points_lifetime_days,
        credit_limit_points=args.credit_limit,
        max_points_per_operation=args.max_points_per_operation,
    )
    if changes == ContractChanges():
        raise UsageError("name at least one term to change, e.g. --earn-rate 2")
    await registry.amend_contract(
        conn, partner_id=partner.id, changes=changes, effective_from=args.effective_from, now=now
    )
    return await registry.get_partner(
        conn, partner_id=partner.id, now=max(now, args.effective_from)
    )


async def _change_partners(
    conn: Connection, args: argparse.Namespace, now: datetime
) -> list[Partner]:
    """Add a partner, change its contract or its status, recorded in the audit log; or
    list them."""
    if args.partner_command == "list":
        return await registry.list_partners(conn, now=now)
    if args.partner_command == "add":
        terms = ContractTerms(
            currency=args.currency,
            issue_price=args.issue_price,
            redemption_price=args.redemption_price,
            fee_rate=args.fee_rate,
            funding_model=FundingModel(args.funding),
            points_lifetime_days=args.points_lifetime_days,
            credit_limit_points=args.credit_limit,
            allow_negative_reversal=args.allow_negative_reversal,
            earn_rate=args.earn_rate,
            max_points_per_operation=args.max_points_per_operation,
        )
        partner = await registry.add_partner(conn, name=args.name, terms=terms, now=now)
        action = Action.PARTNER_ADDED
        details = _partner_json(partner)
    elif args.partner_command == "contract":
        partner = await _amend(conn, args, now)
        action = Action.CONTRACT_CHANGED
        details = {**_partner_json(partner), "effectiveFrom": args.effective_from.isoformat()}
    else:
        suspend = args.partner_command == "suspend"
        status = PartnerStatus.SUSPENDED if suspend else PartnerStatus.ACTIVE
        partner = await registry.set_status(conn, name=args.name, status=status, now=now)
        action = Action.PARTNER_SUSPENDED if suspend else Action.PARTNER_ACTIVATED
        details = {"name": partner.name, "status": str(partner.status)}
    await _audit(conn, action, f"partner:{partner.id}", details)
    return [partner]


def command_partner(args: argparse.Namespace) -> int:
    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            partners = await _change_partners(conn, args, utc_now())
        if getattr(args, "json", False):
            rows = [_partner_json(p) for p in partners]
            print(json.dumps(rows if args.partner_command == "list" else rows[0]))
            return 0
        for p in partners:
            t = p.contract.terms
            print(
                f"{p.id:>4}  {p.name:<28} {p.status:<9} {t.currency} issue {t.issue_price}"
                f" redeem {t.redemption_price} fee {t.fee_rate} {t.funding_model}"
                f" lifetime {t.points_lifetime_days}d earn {t.earn_rate}/unit"
                f" max {t.max_points_per_operation:,}/op (contract v{p.contract.version}"
                f" from {p.contract.effective_from.date()})"
            )
        if not partners:
            print("no partners yet: exchange partner add NAME --currency USD ...")
        return 0

    return _run(run)


def command_client(args: argparse.Namespace) -> int:
    async def run(database: Database) -> int:
        now = utc_now()
        async with database.transaction(SYSTEM) as conn:
            if args.client_command == "revoke":
                await clients.revoke_client(conn, client_id=args.client_id)
                await _audit(conn, Action.CLIENT_REVOKED, f"client:{args.client_id}")
                print(f"client {args.client_id} revoked; its tokens stop working")
                return 0
            partner_id = None
            if args.partner:
                partner_id = (await registry.get_partner(conn, name=args.partner, now=now)).id
            jwks = _read_jwks(args.jwks) if args.jwks else None
            created = await clients.create_client(
                conn, scopes=args.scopes.split(), partner_id=partner_id, jwks=jwks
            )
            await _audit(
                conn,
                Action.CLIENT_CREATED,
                f"client:{created.client_id}",
                {
                    "partnerId": partner_id,
                    "scopes": created.scopes,
                    "authentication": "private_key_jwt" if jwks else "client_secret",
                },
            )
        if args.json:
            print(
                json.dumps(
                    {
                        "client_id": created.client_id,
                        "client_secret": created.client_secret,
                        "scope": " ".join(created.scopes),
                    }
                )
            )
        else:
            print(f"client_id:     {created.client_id}")
            if created.client_secret:
                print(f"client_secret: {created.client_secret}")
                print("(the secret is shown only now; store it safely)")
            print(f"scope:         {' '.join(created.scopes)}")
        return 0

    return _run(run)


def _read_jwks(path: str) -> dict[str, Any]:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"--jwks {path}: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f"--jwks {path}: not a JSON Web Key Set")
    return value


def command_member(args: argparse.Namespace) -> int:
    settings = Settings.from_environment()
    keys = IdentityKeys.from_secret(settings.secret_key())
    if args.member_command == "find":
        return command_member_find(args, keys)

    async def run(database: Database) -> int:
        subject = f"member:{args.member_id}"
        async with database.transaction(SYSTEM) as conn:
            if args.member_command == "consent":
                return await _consent(conn, args.member_id, args.cross_partner == "on")
            if args.member_command == "erase":
                await identity.erase_member(conn, member_id=args.member_id, now=utc_now())
                events = await events_repository.forget_member(conn, member_id=args.member_id)
                await privacy.erase(conn, member_id=args.member_id)
                await _audit(conn, Action.MEMBER_ERASED, subject)
                print(
                    f"member {args.member_id}: identity erased, {events} events about them"
                    " purged, profiles and offers deleted; ledger entries kept"
                )
                return 0
            exported = await identity.export_member(conn, keys=keys, member_id=args.member_id)
            held = await privacy.export(conn, member_id=args.member_id)
            await _audit(conn, Action.MEMBER_EXPORTED, subject)
        print(json.dumps({**exported.__dict__, "insights": held}, default=str))
        return 0

    return _run(run)


def command_member_find(args: argparse.Namespace, keys: IdentityKeys) -> int:
    """``exchange member find``: the member id behind a contact, recorded in the audit
    log by how it was looked up (never the contact itself)."""

    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            found = await identity.locate_member(
                conn, keys=keys, email=args.email, phone=args.phone
            )
            by = "email" if args.email else "phone"
            await _audit(conn, Action.MEMBER_LOOKED_UP, f"member:{found.member_id}", {"by": by})
        links = [
            {"partnerId": link.partner_id, "partner": link.partner_name,
             "linkedAt": link.linked_at.isoformat()}
            for link in found.links
        ]  # fmt: skip
        if args.json:
            print(json.dumps(
                {"memberId": found.member_id, "since": found.since.isoformat(), "links": links}
            ))  # fmt: skip
            return 0
        print(f"member {found.member_id} (known since {found.since.isoformat()})")
        for link in links:
            print(
                f"  linked by {link['partner']} (partner {link['partnerId']}) at {link['linkedAt']}"
            )
        if not links:
            print("  linked by no partner now")
        print(f"next: exchange member export {found.member_id}  |  exchange member erase"
              f" {found.member_id}")  # fmt: skip
        return 0

    return _run(run)


def command_insights(args: argparse.Namespace) -> int:
    from exchange.app import refresh_insights

    if args.insights_command != "refresh":
        return _insights_report(args)

    async def refresh(database: Database) -> int:
        started = time.perf_counter()
        at_partners, coalition = await refresh_insights(database)
        print(
            f"RFM refreshed: {at_partners} partner profiles and {coalition} members changed"
            f" ({time.perf_counter() - started:.1f} s)"
        )
        return 0

    return _run(refresh)


async def _consent(conn: Connection, member_id: int, given: bool) -> int:
    """Record a member's consent (as the member told the operator), in the audit log."""
    if await partner_repository.identity(conn, member_id=member_id) is None:
        raise UsageError(f"no member {member_id}")
    changed = await profiles.set_consent(conn, member_id=member_id, consent=given, now=utc_now())
    if changed:
        await _audit(
            conn, Action.MEMBER_CONSENT_CHANGED, f"member:{member_id}", {"crossPartner": given}
        )
    state = "on" if given else "off"
    print(f"member {member_id}: cross-partner consent {state}" + ("" if changed else " (already)"))
    return 0


def _insights_report(args: argparse.Namespace) -> int:
    from exchange.insights import report

    if args.start is None or args.end is None or args.out is None:
        raise UsageError("give --from, --to and --out (or the subcommand refresh)")
    settings = Settings.from_environment()

    async def write(database: Database) -> int:
        now = utc_now()
        async with database.transaction(SYSTEM) as conn:
            partner_id, name = None, report.EVERY_PARTNER
            if args.partner:
                found = await registry.get_partner(conn, name=args.partner, now=now)
                partner_id, name = found.id, found.name
            gathered = await report.gather(
                conn, partner_id=partner_id, partner=name, start=args.start, end=args.end,
                now=now, k=settings.tunables.k_anonymity,
            )  # fmt: skip
        render = {"html": report.to_html, "json": report.to_json, "csv": report.to_csv}
        args.out.write_text(render[args.format](gathered), encoding="utf-8")
        print(f"wrote {args.out} ({args.format}, {name}, {args.start.date()} to {args.end.date()})")
        return 0

    return _run(write)


def command_keys(args: argparse.Namespace) -> int:
    settings = Settings.from_environment()

    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            kid = await key_store.rotate(conn, secret=settings.secret_key(), now=utc_now())
            await _audit(conn, Action.KEYS_ROTATED, f"signing_key:{kid}")
        print(f"now signing with {kid}; the previous key stays published until its tokens expire")
        return 0

    return _run(run)


def demo_credentials_heading(summary: DemoSummary) -> str:
    """Where the demo's credentials are kept, and whether they are new (and why)."""
    from exchange.devtools.demo import CredentialsState

    path = summary.credentials_file
    said = {
        CredentialsState.NEW: f"new, kept in {path} (only you may read it); later runs"
        " keep these clients",
        CredentialsState.KEPT: f"kept from {path}",
        CredentialsState.MISSING: f"{path} was missing: new demo clients, kept there from now"
        " on (the earlier demo clients stay as they were)",
        CredentialsState.REPLACED: f"the clients in {path} no longer work here (revoked,"
        " another database, or other scopes): new demo clients, kept there from now on",
    }
    return f"demo credentials ({said[summary.credentials_state]}):"


def first_request(credential: dict[str, str | None], public_url: str) -> list[str]:
    """Two copy-pasteable shell lines: get a token, call earnPoints with it."""
    extract = "python3 -c 'import sys,json; print(json.load(sys.stdin)[\"access_token\"])'"
    query = (
        'mutation { earnPoints(input: {idempotencyKey: \\"first-1\\", memberRef: \\"alice\\",'
        " points: 100}) { transaction { id points } wallet { balance }"
        " userErrors { code message } } }"
    )
    return [
        f"TOKEN=$(curl -s -u '{credential['client_id']}:{credential['client_secret']}'"
        f" -d grant_type=client_credentials {public_url}/oauth/token | {extract})",
        f'curl -s {public_url}/graphql -H "Authorization: Bearer $TOKEN"'
        f" -H 'Content-Type: application/json' -d '{{\"query\": \"{query}\"}}'",
    ]


def _day(moment: datetime) -> str:
    """A period bound as `settle --from/--to` takes it: the day when it is midnight UTC."""
    utc = moment.astimezone(UTC)
    return utc.date().isoformat() if utc.time() == datetime.min.time() else moment.isoformat()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _run_json(run: RunSummary) -> dict[str, Any]:
    return {
        "run": run.id,
        "period": {"from": run.period_start.isoformat(), "to": run.period_end.isoformat()},
        "status": str(run.status),
        "currency": run.currency,
        "digest": run.digest,
        "createdAt": run.created_at.isoformat(),
        "finalizedAt": _iso(run.finalized_at),
        "paidAt": _iso(run.paid_at),
        "instructions": run.instruction_count,
        "paidInstructions": [
            {"number": p.instruction, "reference": p.reference, "paidAt": p.paid_at.isoformat()}
            for p in run.payments
        ],
        "supersedes": list(run.supersedes),
        "supersededBy": run.superseded_by,
    }


def text_table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> list[str]:
    """Lines of a plain-text table, each header as wide as its column and aligned like
    it (numbers right, text left)."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def command_settle_list(args: argparse.Namespace) -> int:
    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            runs = await settlement_service.list_runs(conn, limit=args.list_limit)
        if args.list_json:
            print(json.dumps([_run_json(r) for r in runs]))
            return 0
        if not runs:
            print("no settlement runs yet: exchange settle --from DATE --to DATE")
            return 0
        headers = ["run", "from", "to", "status", "currency", "paid", "supersedes",
                   "superseded by", "digest"]  # fmt: skip
        rows = [
            [str(r.id), _day(r.period_start), _day(r.period_end), str(r.status), r.currency,
             f"{len(r.payments)}/{r.instruction_count}", " ".join(map(str, r.supersedes)),
             "" if r.superseded_by is None else str(r.superseded_by), r.digest[:12]]
            for r in runs
        ]  # fmt: skip
        print("\n".join(text_table(headers, rows, numeric={0, 5, 7})))
        return 0

    return _run(run)


def command_settle(args: argparse.Namespace) -> int:
    if args.settle_command == "list":
        return command_settle_list(args)
    if args.start is None or args.end is None:
        raise UsageError("the following arguments are required: --from, --to")

    async def run(database: Database) -> int:
        print(f"settling [{args.start.isoformat()}, {args.end.isoformat()}) …", file=sys.stderr)
        async with database.transaction(SYSTEM) as conn:
            result = await settlement_service.run_settlement(
                conn,
                start=args.start,
                end=args.end,
                now=utc_now(),
                currency=args.currency,
                rates=dict(args.rate),
            )
            if args.finalize:
                result = await settlement_service.finalize(conn, run_id=result.id, now=utc_now())
                subject = f"settlement_run:{result.id}"
                await _audit(conn, Action.SETTLEMENT_FINALIZED, subject, result.summary())
        doc = result.document
        if args.json:
            print(
                json.dumps(
                    {
                        "run": result.id,
                        "status": str(result.status),
                        "digest": result.digest,
                        **doc,
                    },
                    sort_keys=True,
                )
            )
            return 0
        print(
            f"settlement run {result.id} ({result.status}), {doc['currency']},"
            f" digest {result.digest[:12]}"
        )
        for key, amount in doc["netPositions"].items():
            name = doc["parties"].get(key, key)
            print(f"  {name:<30} net {amount:>14}  ({'pays' if amount[0] != '-' else 'receives'})")
        for number, instruction in enumerate(doc["instructions"], start=1):
            payer = doc["parties"].get(instruction["payer"], instruction["payer"])
            payee = doc["parties"].get(instruction["payee"], instruction["payee"])
            print(f"  pay {number}: {payer} -> {payee} {instruction['amount']}")
        rec = doc["reconciliation"]
        print(
            f"  journal balanced: {rec['journalBalanced']}; partners net = coalition margin"
            f" {rec['coalitionMargin']}: {rec['partnersNetEqualsMargin']}"
        )
        return 0

    return _run(run)


def _write(out: str, body: str) -> None:
    """Write ``body`` to the file ``out``, or fail with one line saying why."""
    try:
        Path(out).write_text(body)
    except OSError as error:
        raise Failure(f"cannot write {out}: {error.strerror or error}") from None


MIX_OPERATIONS = ("earn", "redeem", "wallet", "bulk", "ndjson", "purchase", "preview", "insights")


def _mix(value: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in value.split(","):
        name, _, weight = part.partition("=")
        if name not in MIX_OPERATIONS or not weight.isdigit():
            raise UsageError(
                f"--mix takes {','.join(f'{op}=N' for op in MIX_OPERATIONS)}, not {value!r}"
            )
        mix[name] = int(weight)
    if not any(mix.values()):
        raise UsageError("--mix needs a positive weight")
    return mix


def command_bench(args: argparse.Namespace) -> int:
    from exchange.devtools import bench, server_cpu, webhook_bench

    if args.bench_command == "seed":
        return command_bench_seed(args)
    if args.bench_command == "webhooks":
        return command_bench_webhooks(args)
    mix = _mix(args.mix)
    if not 1 <= args.concurrency <= 1024 or not 1 <= args.partners <= 500:
        raise UsageError("--concurrency must be 1 to 1024 and --partners 1 to 500")
    if not 1 <= args.clients <= 64:
        raise UsageError("--clients must be 1 to 64")
    if not 0 <= args.campaigns <= 1_000:
        raise UsageError("--campaigns must be 0 to 1,000")
    if not 1 <= args.members <= 1_000_000 or args.duration <= 0:
        raise UsageError("--members must be 1 to 1,000,000 and --duration positive")
    if args.server_pid is not None and not server_cpu.running(args.server_pid):
        raise UsageError(f"--server-pid: no process {args.server_pid} on this machine")
    settings = Settings.from_environment()

    async def run(database: Database) -> int:
        if args.seeded:
            print(f"picking {args.members} seeded members …", file=sys.stderr)
            partners, refs = await bench.setup_seeded(database, members=args.members)
        else:
            tag = f"{int(utc_now().timestamp())}"
            print(
                f"setting up {args.partners} partners and {args.members} members …",
                file=sys.stderr,
            )
            partners, refs = await bench.setup(
                database,
                partners=args.partners,
                members=args.members,
                secret=settings.secret_key(),
                tag=tag,
            )
        if mix.get("purchase") or mix.get("preview"):
            print(f"adding {args.campaigns} active campaigns per partner …", file=sys.stderr)
            await bench.add_campaigns(database, partners, args.campaigns)
        partners = await bench.with_clients(database, partners, args.clients)
        print(f"loading {args.url} at {args.concurrency} for {args.duration}s …", file=sys.stderr)
        hooks: contextlib.AbstractAsyncContextManager[dict[str, int]] = (
            webhook_bench.receiving(database, secret=settings.secret_key())
            if args.webhook
            else contextlib.nullcontext({})
        )
        async with hooks as counted:
            result = await bench.run_load(
                args.url,
                partners,
                refs,
                concurrency=args.concurrency,
                duration=args.duration,
                mix=mix,
                server_pid=args.server_pid,
            )
        result["webhooks_received"] = counted.get("received") if args.webhook else None
        _print_bench(result, args)
        return 1 if result["errors"] else 0

    return _run(run)


def _print_bench(result: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['ops_per_s']} ops/s  p50 {result['p50_ms']} ms  p95"
            f" {result['p95_ms']} ms  p99 {result['p99_ms']} ms  errors {result['errors']}"
            f"  (refused: {result['refused_insufficient_points']}; throttled:"
            f" {result['throttled']}; bench CPU"
            f" {result['bench_cpu_share']:.0%} of a core)"
        )
        print(_server_cpu_line(result))
        for op, figures in result["by_operation"].items():
            print(
                f"  {op:<7} {figures['count']:>7}  p50 {figures['p50_ms']} ms"
                f"  p99 {figures['p99_ms']} ms"
            )
        if result["bulk_items_per_s"]:
            print(f"  bulk issuance: {result['bulk_items_per_s']} earn items/s")
        if args.webhook:
            print(f"  webhooks: {result['webhooks_received']} events received during the run")


def _server_cpu_line(result: dict[str, Any]) -> str:
    busy = result["machine_busy_share"]
    machine = f"; machine busy {busy:.0%}" if busy is not None else ""
    if result["server_cpu_ms_per_op"] is None:
        return f"  server CPU: not measured (not a local server; --server-pid){machine}"
    line = (
        f"  server CPU {result['server_cpu_ms_per_op']} ms per operation"
        f" ({result['server_cpu_cores']} cores){machine}"
    )
    if result["server_cpu_ms_per_item"] is not None:
        line += f"; {result['server_cpu_ms_per_item']} ms per bulk item"
    return line


def command_bench_webhooks(args: argparse.Namespace) -> int:
    from exchange.devtools import webhook_bench

    if not 1 <= args.hook_events <= 1_000_000:
        raise UsageError("--events must be 1 to 1,000,000")
    settings = Settings.from_environment()

    async def run(database: Database) -> int:
        result = await webhook_bench.run(
            database, events=args.hook_events, secret=settings.secret_key(),
            tunables=settings.tunables,
        )  # fmt: skip
        if args.hook_json:
            print(json.dumps(result))
        else:
            print(
                f"{result['received']:,} of {result['events']:,} events delivered"
                f" in {result['seconds']} s:"
                f" {result['events_per_s']} events/s"
                f" (CPU per event: deliverer {result['deliverer_cpu_ms_per_event']} ms,"
                f" receiver {result['receiver_cpu_ms_per_event']} ms)"
            )
        return 0 if result["received"] >= result["events"] else 1

    return _run(run)


def command_bench_seed(args: argparse.Namespace) -> int:
    from exchange.devtools import seed

    try:
        seed.check_counts(
            members=args.seed_members,
            entries=args.seed_entries,
            partners=args.seed_partners,
            purchases=args.seed_purchases,
        )
    except DomainError as error:
        raise UsageError(error.message) from None
    settings = Settings.from_environment()

    async def run(database: Database) -> int:
        summary = await seed.seed(
            database,
            members=args.seed_members,
            entries=args.seed_entries,
            partners=args.seed_partners,
            secret=settings.secret_key(),
            now=utc_now(),
            progress=lambda line: print(line, file=sys.stderr),
            purchases=args.seed_purchases,
            resume=args.seed_resume,
        )
        period = f"--from {summary.period_start.date()} --to {summary.period_end.date()}"
        if args.seed_json:
            print(json.dumps({**summary.__dict__, "settle": period}, default=str))
        else:
            print(
                f"seeded {summary.members:,} members, {summary.entries:,} entries"
                f" ({summary.redemptions:,} redemptions) and {summary.purchases:,} purchases"
                f" for partners {summary.partners[0]}"
                f"..{summary.partners[-1]} in {summary.seconds} s; settle them with"
                f" 'exchange settle {period}'"
            )
        return 0

    return _run(run)


def command_payment(args: argparse.Namespace) -> int:
    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            result = await settlement_service.record_payment(
                conn,
                run_id=args.run,
                instruction=args.instruction,
                reference=args.reference,
                now=utc_now(),
            )
            await _audit(
                conn,
                Action.SETTLEMENT_PAYMENT_RECORDED,
                f"settlement_run:{result.id}",
                {"instruction": args.instruction, "reference": args.reference},
            )
        print(f"run {result.id}: instruction {args.instruction} paid; run is {result.status}")
        return 0

    return _run(run)


def _report_body(args: argparse.Namespace, run: SettlementRun, partner: Partner | None) -> str:
    if args.table and (args.format != "csv" or partner is not None):
        raise UsageError("--table goes with --format csv, without --partner")
    if partner is not None:
        if args.format not in ("json", "csv"):
            raise UsageError("a partner statement comes as json or csv")
        if args.format == "csv":
            return settlement_reports.statement_csv(run, partner.id)
        statement = settlement_reports.statement(run, partner.id)
        return json.dumps(statement, sort_keys=True, indent=2) + "\n"
    if args.format == "csv" and args.table == "instructions":
        return settlement_reports.instructions_csv(run)
    export: dict[str, Callable[[SettlementRun], str]] = {
        "json": settlement_reports.to_json,
        "csv": settlement_reports.to_csv,
        "html": settlement_reports.to_html,
        "beancount": settlement_reports.to_beancount,
    }
    return export[args.format](run)


def command_report(args: argparse.Namespace) -> int:
    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            result = await settlement_service.get_run(conn, run_id=args.run)
            partner = (
                await registry.get_partner(conn, name=args.partner, now=utc_now())
                if args.partner
                else None
            )
        body = _report_body(args, result, partner)
        if args.out == "-":
            sys.stdout.write(body)
        else:
            await asyncio.to_thread(_write, args.out, body)
            print(f"wrote {args.out} ({args.format}, run {result.id})")
        return 0

    return _run(run)


def command_tier(args: argparse.Namespace) -> int:
    tunables = Settings.from_environment().tunables

    async def run(database: Database) -> int:
        now = utc_now()
        if args.tier_command == "review":
            # Imported here: the app module brings the whole GraphQL schema, a second of
            # start-up every other command does without.
            from exchange import app

            as_of = args.as_of or now
            reviewed, downgraded = await app.review_tiers(database, as_of=as_of, tunables=tunables)
            print(f"reviewed {reviewed} members; {downgraded} went down a tier (as of {as_of})")
            return 0
        async with database.transaction(SYSTEM) as conn:
            if args.tier_command == "set":
                tier = await tiers.set_tier(
                    conn,
                    name=args.name,
                    qualifying_points=args.qualifying_points,
                    earn_multiplier=args.earn_multiplier,
                    now=now,
                )
                print(
                    f"tier {tier.name}: from {tier.qualifying_points:,} qualifying points,"
                    f" earn {tier.earn_multiplier}x"
                )
                return 0
            ladder = await tiers.all_tiers(conn)
            holders = await tiers.holders(conn)
        rows = [
            {"name": t.name, "qualifyingPoints": t.qualifying_points,
             "earnMultiplier": str(t.earn_multiplier), "members": holders.get(t.name, 0)}
            for t in ladder
        ]  # fmt: skip
        if args.json:
            print(json.dumps(rows))
        elif not rows:
            print(
                "no tiers yet: exchange tier set Gold --qualifying-points 5000"
                " --earn-multiplier 1.5"
            )
        for row in [] if args.json else rows:
            print(
                f"{row['name']:<20} from {row['qualifyingPoints']:>12,} points"
                f"  earn {row['earnMultiplier']:>5}x  {row['members']:>8,} members"
            )
        return 0

    return _run(run)


def command_audit(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= audit.log.MAX_ENTRIES:
        raise UsageError(f"--limit must be between 1 and {audit.log.MAX_ENTRIES}")

    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            found = await audit.entries(
                conn,
                since=args.since,
                action=Action(args.action) if args.action else None,
                limit=args.limit,
            )
        if args.json:
            print(json.dumps([entry.as_json() for entry in found]))
            return 0
        for entry in found:
            details = json.dumps(entry.details, sort_keys=True) if entry.details else ""
            print(
                f"{entry.at.isoformat()}  {entry.action:<28} {entry.subject:<28}"
                f" {entry.actor} ({entry.origin})  {details}".rstrip()
            )
        if not found:
            filtered = args.since or args.action
            print("no operator actions recorded" + (" that match" if filtered else ""))
        return 0

    return _run(run)


def command_campaign(args: argparse.Namespace) -> int:
    async def run(database: Database) -> int:
        async with database.transaction(SYSTEM) as conn:
            found = await campaign_rules.everything(conn, status=args.status)
            names = {p.id: p.name for p in await registry.list_partners(conn, now=utc_now())}
        rows = [_campaign_json(c, names) for c in found]
        if args.json:
            print(json.dumps(rows))
            return 0
        if not rows:
            print("no campaigns yet (partners create them with the createCampaign mutation)")
        for row in rows:
            budget = "no budget" if row["budgetPoints"] is None else f"of {row['budgetPoints']:,}"
            print(
                f"{row['id']:>5}  {row['name'][:30]:<30} {row['status']:<16}"
                f" {row['owner'][:20]:<20} {row['effect']:<22} spent {row['spentPoints']:,}"
                f" {budget}"
            )
        return 0

    return _run(run)


def _campaign_json(campaign: Campaign, names: dict[int, str]) -> dict[str, Any]:
    def who(partner_id: int | None) -> str:
        return "coalition" if partner_id is None else names.get(partner_id, str(partner_id))

    effect = campaign.effect
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": str(campaign.status),
        "owner": who(campaign.owner_partner_id),
        "startsAt": campaign.starts_at.isoformat(),
        "endsAt": campaign.ends_at.isoformat() if campaign.ends_at else None,
        "condition": campaign.condition,
        "effect": f"{effect.kind} {effect.value}"
        + (f" on {effect.category}" if effect.category else ""),
        "budgetPoints": campaign.budget_points,
        "spentPoints": campaign.spent_points,
        "perMemberLimit": campaign.per_member_limit,
        "funding": [
            {"funder": who(f.partner_id), "share": str(f.share), "accepted": f.accepted}
            for f in campaign.funding
        ],
    }


def command_events(args: argparse.Namespace) -> int:
    if args.events_command == "list" and not 1 <= args.limit <= 1000:
        raise UsageError("--limit must be between 1 and 1000")
    settings = Settings.from_environment()

    async def run(database: Database) -> int:
        if args.events_command == "deliver":
            return await _deliver(database, settings, once=args.once)
        async with database.transaction(SYSTEM) as conn:
            if args.events_command == "redeliver":
                if not await events_repository.redeliver(
                    conn, delivery_id=args.delivery_id, now=utc_now()
                ):
                    raise InvalidInput(
                        "delivery {delivery} does not exist or is still pending",
                        refs={"delivery": Ref(Kind.WEBHOOK_DELIVERY, args.delivery_id)},
                    )
                print(f"delivery {args.delivery_id} queued again")
                return 0
            if args.events_command == "stats":
                figures = dict((await events_repository.figures(conn)).items())
                print(json.dumps(figures) if args.json else _figures_line(figures))
                return 0
            if args.events_command == "endpoints":
                rows = [_endpoint_json(r) for r in await events_repository.endpoints(conn)]
            else:
                rows = [
                    _delivery_json(r)
                    for r in await events_repository.deliveries(
                        conn, endpoint_id=args.endpoint, status=args.status, limit=args.limit
                    )
                ]
        _print_rows(rows, args.json, args.events_command)
        return 0

    return _run(run)


async def _deliver(database: Database, settings: Settings, *, once: bool) -> int:
    worker = delivery.Deliverer(
        database, keys=IdentityKeys.from_secret(settings.secret_key()), tunables=settings.tunables
    )
    if once:
        try:
            await worker.drain()
        finally:
            await worker.close()
        print("delivered what was due")
        return 0
    print("delivering webhooks (Ctrl-C to stop)", file=sys.stderr)
    await worker.run_forever()
    return 0


def _figures_line(figures: dict[str, Any]) -> str:
    return (
        f"deliveries: {figures['pending']} pending, {figures['delivered']} delivered,"
        f" {figures['failed']} failed; {figures['unfanned']} events not fanned out yet;"
        f" endpoints: {figures['enabled_endpoints']} enabled,"
        f" {figures['disabled_endpoints']} disabled"
    )


def _endpoint_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "partner": row.partner_id,
        "url": row.url,
        "eventTypes": list(row.event_types),
        "status": row.status,
        "disabledReason": row.disabled_reason,
        "createdAt": row.created_at.isoformat(),
    }


def _delivery_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "endpoint": int(row.endpoint_id),
        "eventId": f"evt_{row.event_id}",
        "eventType": row.event_type,
        "status": row.status,
        "attempts": int(row.attempts),
        "lastStatusCode": row.last_status_code,
        "lastError": row.last_error,
        "nextAttemptAt": row.next_attempt_at.isoformat() if row.status == "PENDING" else None,
        "deliveredAt": row.delivered_at.isoformat() if row.delivered_at else None,
    }


def _print_rows(rows: list[dict[str, Any]], as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("no webhook endpoints" if what == "endpoints" else "no deliveries")
    for row in rows:
        if what == "endpoints":
            owner = "operators" if row["partner"] is None else f"partner {row['partner']}"
            reason = f" ({row['disabledReason']})" if row["disabledReason"] else ""
            print(f"{row['id']:>5}  {owner:<14} {row['status']}{reason}  {row['url']}"
                  f"  {','.join(row['eventTypes'])}")  # fmt: skip
        else:
            error = f"  {row['lastError']}" if row["lastError"] else ""
            print(f"{row['id']:>7}  endpoint {row['endpoint']:<5} {row['eventType']:<28}"
                  f" {row['status']:<9} {row['attempts']} attempt(s){error}")  # fmt: skip


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": command_serve,
    "db": command_db_upgrade,
    "verify": command_verify,
    "expire": command_expire,
    "partner": command_partner,
    "tier": command_tier,
    "campaign": command_campaign,
    "insights": command_insights,
    "client": command_client,
    "member": command_member,
    "keys": command_keys,
    "settle": command_settle,
    "report": command_report,
    "payment": command_payment,
    "audit": command_audit,
    "events": command_events,
    "bench": command_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(f"exchange: error: {error}", file=sys.stderr)
        return 2
    except DomainError as error:
        print(f"exchange: error: {error.message}", file=sys.stderr)
        return 1
    except Failure as error:
        print(f"exchange: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the last line of defence: one line, never a traceback
        print(f"exchange: error: {type(error).__name__}: {_first_line(error)}", file=sys.stderr)
        return 1


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "unexpected failure"


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
