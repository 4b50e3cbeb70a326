"""`exchange bench`: drive a running server over HTTP with a realistic mix and report
throughput, latency percentiles, errors and the load generator's own CPU.

Setup (through the database the server uses): bench partners with OAuth clients, and
members linked to every partner with a starting balance. Load: `concurrency` workers,
each sending one GraphQL operation at a time for `duration` seconds. A redemption
refused for insufficient points is a business answer, not an error, and a request
refused as THROTTLED is the client's query-cost budget doing its work (~400 mutations a
second per OAuth client, graphql_schema.cost; one client per partner unless
:func:`with_clients` adds more); both are counted apart. An HTTP error, any other
GraphQL error or any other userError is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import socket
import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from exchange import ledger
from exchange.devtools import seed
from exchange.devtools.server_cpu import ServerCpu, machine_ticks
from exchange.kit.clock import utc_now
from exchange.kit.db import Connection, Database
from exchange.kit.errors import NotFound
from exchange.kit.invariant import present
from exchange.kit.system import SYSTEM
from exchange.loyalty import campaigns
from exchange.loyalty.campaigns import CampaignDraft
from exchange.loyalty.models import CampaignStatus, Effect, EffectKind
from partners import clients, identity, registry
from partners.identity import IdentityKeys
from partners.models import ContractTerms

EARN = (
    "mutation($k: String!, $r: String!, $p: Int!) { earnPoints(input: {idempotencyKey: $k,"
    " memberRef: $r, points: $p}) { transaction { id } userErrors { code } } }"
)
REDEEM = (
    "mutation($k: String!, $r: String!, $p: Int!) { redeemPoints(input: {idempotencyKey: $k,"
    " memberRef: $r, points: $p}) { transaction { id } userErrors { code } } }"
)
BULK = (
    "mutation($items: [EarnPointsInput!]!) { earnPointsBatch(input: {items: $items}) {"
    " results { userErrors { code } } userErrors { code } } }"
)
BULK_ITEMS = 1000  # per earnPointsBatch request: the most a batch may hold
NDJSON_ITEMS = 5000  # per POST /bulk/earn request (NDJSON, no GraphQL)
WALLET = "query($r: String!) { member(memberRef: $r) { wallet { balance available } } }"
#: A member's insights: its segments and profile (decision 0018).
INSIGHTS = (
    "query($r: String!) { member(memberRef: $r) { segments profile { purchasesHere spendHere"
    " lastPurchaseAt meanDaysBetweenPurchases rfm { recency frequency monetary } } } }"
)
PURCHASE = (
    "mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {"
    " purchase { id points } userErrors { code } } }"
)
PREVIEW = (
    "mutation($input: PreviewPurchaseInput!) { previewPurchase(input: $input) {"
    " points userErrors { code } } }"
)
CATEGORIES = ("popcorn", "tickets", "snacks", "coffee", "drinks")
CHANNELS = ("IN_STORE", "ONLINE", "APP")
#: Conditions of the bench's campaigns, in turn ({n}: 1 to 9): each holds for a few per
#: cent of purchases, so a purchase matches one or two of 50 campaigns, as in a real
#: programme; every kind of variable is read.
CONDITIONS = (
    "purchase.amount_minor >= 5{n}00",
    'purchase.channel == "APP" && purchase.amount_minor >= 4{n}00',
    '"popcorn" in purchase.categories && purchase.weekday == {n} % 7 + 1',
    "member.purchases_here == {n}0",
    'purchase.items.exists(i, i.category == "snacks" && i.quantity >= 3'
    " && i.amount_minor >= 1{n}00)",
    "purchase.hour == {n} + 9",
    "member.days_since_last_here > {n}0",
    'size(member.categories_30d) >= 5 && purchase.store == "s{n}"',
)
SCOPES = ["points:earn", "points:redeem", "members:link", "members:read", "insights:read"]


@dataclass
class BenchPartner:
    partner_id: int
    client_id: str
    client_secret: str
    token: str = ""


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    refused: int = 0
    throttled: int = 0
    bulk_items: int = 0
    error_examples: list[str] = field(default_factory=list)

    def record(self, op: str, seconds: float) -> None:
        self.latencies.setdefault(op, []).append(seconds)


async def setup(
    database: Database, *, partners: int, members: int, secret: bytes, tag: str
) -> tuple[list[BenchPartner], list[str]]:
    """Bench partners with clients; members linked to each partner, with 100,000 points."""
    keys = IdentityKeys.from_secret(secret)
    created: list[BenchPartner] = []
    terms = ContractTerms(
        currency="USD", issue_price=Decimal("0.01"), redemption_price=Decimal("0.008")
    )
    now = utc_now()
    async with database.transaction(SYSTEM) as conn:
        for number in range(partners):
            partner = await registry.add_partner(
                conn, name=f"bench-{tag}-{number}", terms=terms, now=now
            )
            created.append(await _client_of(conn, partner.id))
    refs = [f"m{number}" for number in range(members)]
    for start in range(0, members, 500):
        async with database.transaction(SYSTEM) as conn:
            for ref in refs[start : start + 500]:
                member_id = None
                for bench_partner in created:
                    linked = await identity.link_member(
                        conn,
                        keys=keys,
                        partner_id=bench_partner.partner_id,
                        member_ref=ref,
                        email=f"{ref}.{tag}@bench.invalid",
                        now=now,
                    )
                    member_id = linked.member_id
                await ledger.earn(
                    conn,
                    client_id=f"bench-{tag}",
                    partner_id=created[0].partner_id,
                    request=ledger.EarnRequest(
                        idempotency_key=f"seed-{ref}",
                        member_id=present(member_id, "a bench partner linked the member"),
                        points=100_000,
                    ),
                    now=now,
                )
    return created, refs


async def with_clients(
    database: Database, partners: list[BenchPartner], per_partner: int
) -> list[BenchPartner]:
    """Each partner's load spread over ``per_partner`` OAuth clients of its own (its
    first and ``per_partner - 1`` more), drawn at random per request: one client's
    query-cost budget (graphql_schema.cost: ~400 mutations a second) then no longer caps
    what one partner can send. Requests batch per client, so more clients make smaller
    batches."""
    more: list[BenchPartner] = []
    async with database.transaction(SYSTEM) as conn:
        for partner in partners:
            for _ in range(per_partner - 1):
                more.append(await _client_of(conn, partner.partner_id))
    return [*partners, *more]


async def add_campaigns(database: Database, partners: list[BenchPartner], count: int) -> None:
    """``count`` active campaigns per bench partner, with conditions, effects, budgets and
    per-member limits in turn (CONDITIONS), for the purchase and preview operations."""
    now = utc_now()
    effects = (
        Effect(EffectKind.MULTIPLIER, Decimal("1.5")),
        Effect(EffectKind.FIXED, Decimal(25)),
        Effect(EffectKind.POINTS_PER_AMOUNT, Decimal(2), category="popcorn",
               max_points_per_purchase=200),
    )  # fmt: skip
    async with database.transaction(SYSTEM) as conn:
        for partner in partners:
            for number in range(count):
                draft = CampaignDraft(
                    name=f"bench {number}",
                    starts_at=now - timedelta(days=1),
                    condition=CONDITIONS[number % len(CONDITIONS)].format(n=number % 9 + 1),
                    effect=effects[number % len(effects)],
                    budget_points=10**9 if number % 2 else None,
                    per_member_limit=50 if number % 3 == 0 else None,
                )
                made = await campaigns.create(conn, owner=partner.partner_id, draft=draft,
                                              created_by="bench", now=now)  # fmt: skip
                await campaigns.move(conn, campaign_id=made.id, to=CampaignStatus.ACTIVE,
                                     owner=partner.partner_id, now=now)  # fmt: skip


def _purchase(ref: str) -> dict[str, Any]:
    """A purchase of 1 to 3 lines of 1.00 to 20.00, and 2.00 not itemised."""
    pick = random.random
    amounts = [Decimal(f"{1 + pick() * 19:.2f}") for _ in range(1 + int(pick() * 3))]
    lines = [
        {"category": random.choice(CATEGORIES), "amount": str(amount),  # noqa: S311
         "quantity": 1 + int(pick() * 3)}
        for amount in amounts
    ]  # fmt: skip
    total = sum(amounts, Decimal("2.00"))
    return {
        "memberRef": ref,
        "amount": str(total),
        "currency": "USD",
        "channel": random.choice(CHANNELS),  # noqa: S311
        "storeRef": f"s{1 + int(pick() * 9)}",
        "items": lines,
    }


async def setup_seeded(database: Database, *, members: int) -> tuple[list[BenchPartner], list[str]]:
    """A new client for each partner of `exchange bench seed`, and refs of ``members``
    random seeded members that every seed partner has linked (a worker draws a partner
    and a ref independently)."""
    async with database.transaction(SYSTEM) as conn:
        partner_ids = await seed.seed_partners(conn)
        if not partner_ids:
            raise NotFound("no seed partners here: run 'exchange bench seed' first")
        refs = await seed.share_members(conn, partner_ids=partner_ids, count=members)
        created = [await _client_of(conn, partner_id) for partner_id in partner_ids]
    return created, refs


async def _client_of(conn: Connection, partner_id: int) -> BenchPartner:
    """A new OAuth client of the partner with the bench's scopes, and its secret."""
    client = await clients.create_client(conn, scopes=SCOPES, partner_id=partner_id)
    return BenchPartner(
        partner_id, client.client_id, present(client.client_secret, "a new client has a secret")
    )


async def _token(http: httpx.AsyncClient, partner: BenchPartner) -> str:
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(partner.client_id, partner.client_secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _tokens(url: str, partners: list[BenchPartner]) -> None:
    """A fresh access token for each bench partner."""
    # Without TCP_NODELAY a request's header and body writes meet delayed ACKs: ~40 ms each.
    transport = httpx.AsyncHTTPTransport(
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as http:
        for partner in partners:
            partner.token = await _token(http, partner)


def _choose(mix: dict[str, int]) -> str:
    return random.choices(list(mix), weights=list(mix.values()))[0]  # noqa: S311


class _Connection:
    """One keep-alive HTTP/1.1 connection for one load worker. The load generator shares
    the machine with the server, so it must spend little CPU per request; a general
    client (httpx) spent several times more than this."""

    def __init__(self, url: str) -> None:
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(
        self, path: str, body: bytes, token: str, media_type: str = "application/json"
    ) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            # Without TCP_NODELAY a request meets delayed ACKs: ~40 ms each.
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {media_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            self.writer.write(head.encode() + body)
            status = int((await self.reader.readline()).split()[1])
            length, chunked = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                elif name.strip().lower() == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
            if chunked:
                return status, await self._chunks()
            return status, await self.reader.readexactly(length)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            await self.close()
            raise

    async def _chunks(self) -> bytes:
        """A chunked response body (a streamed NDJSON answer), whole."""
        reader = self.reader
        if reader is None:
            raise OSError("not connected")
        body = bytearray()
        while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()  # the blank line after the last chunk
        return bytes(body)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def _request(op: str, key: str, ref: str, refs: list[str]) -> tuple[str, bytes, str]:
    """The path, body and media type of one operation of the mix."""
    body: dict[str, Any]
    if op == "earn":
        body = {"query": EARN, "variables": {"k": key, "r": ref, "p": 10}}
    elif op == "redeem":
        body = {"query": REDEEM, "variables": {"k": key, "r": ref, "p": 7}}
    elif op == "purchase":
        body = {"query": PURCHASE, "variables": {"input": {**_purchase(ref),
                                                           "idempotencyKey": key}}}  # fmt: skip
    elif op == "preview":
        body = {"query": PREVIEW, "variables": {"input": _purchase(ref)}}
    elif op == "insights":
        body = {"query": INSIGHTS, "variables": {"r": ref}}
    elif op == "bulk":
        items = [
            {"idempotencyKey": f"{key}-{n}", "memberRef": random.choice(refs), "points": 3}  # noqa: S311
            for n in range(BULK_ITEMS)
        ]
        body = {"query": BULK, "variables": {"items": items}}
    elif op == "ndjson":
        lines = (
            orjson.dumps({"idempotencyKey": f"{key}-{n}", "memberRef": random.choice(refs),  # noqa: S311
                          "points": 3})
            for n in range(NDJSON_ITEMS)
        )  # fmt: skip
        return "/bulk/earn", b"\n".join(lines), "application/x-ndjson"
    else:
        body = {"query": WALLET, "variables": {"r": ref}}
    return "/graphql", orjson.dumps(body), "application/json"


def _decode(op: str, raw: bytes) -> dict[str, Any]:
    if op == "ndjson":
        return {"results": [orjson.loads(line) for line in raw.splitlines() if line]}
    payload: dict[str, Any] = orjson.loads(raw)
    return payload


async def _worker(
    http: _Connection,
    partners: list[BenchPartner],
    refs: list[str],
    mix: dict[str, int],
    deadline: float,
    results: Results,
    worker: int,
) -> None:
    sequence = 0
    while time.monotonic() < deadline:
        op = _choose(mix)
        partner = random.choice(partners)  # noqa: S311
        ref = random.choice(refs)  # noqa: S311
        sequence += 1
        key = f"w{worker}-{sequence}-{time.monotonic_ns()}"
        path, encoded, media_type = _request(op, key, ref, refs)
        started = time.perf_counter()
        try:
            status, raw = await asyncio.wait_for(
                http.post(path, encoded, partner.token, media_type), 60
            )
            payload = _decode(op, raw)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as error:
            await http.close()  # a timed-out or broken exchange leaves the stream unusable
            results.errors += 1
            if len(results.error_examples) < 5:
                results.error_examples.append(f"{op}: {type(error).__name__}")
            continue
        if _judge(op, status, payload, results):
            results.record(op, time.perf_counter() - started)


def _judge(op: str, status: int, payload: dict[str, Any], results: Results) -> bool:
    """Count an answer's outcome; whether it counts as an operation served (a request
    refused as THROTTLED does not: it is neither throughput nor latency)."""
    if _code(payload) == "THROTTLED":  # the client's query-cost budget, as designed
        results.throttled += 1
        return False
    problem = None
    if status != 200 or payload.get("errors"):
        problem = f"{op}: HTTP {status} {str(payload.get('errors'))[:120]}"
    elif op == "ndjson":
        failed = [e for r in payload["results"] for e in r["userErrors"]]
        if failed:
            problem = f"ndjson: {len(failed)} items failed, e.g. {failed[0]['code']}"
        else:
            results.bulk_items += len(payload["results"])
    elif op == "bulk":
        batch = payload["data"]["earnPointsBatch"]
        failed = [e for r in batch["results"] for e in r["userErrors"]] + batch["userErrors"]
        if failed:
            problem = f"bulk: {len(failed)} items failed, e.g. {failed[0]['code']}"
        else:
            results.bulk_items += len(batch["results"])
    elif op not in ("wallet", "insights"):
        errors = next(iter(payload["data"].values()))["userErrors"]
        if errors and errors[0]["code"] == "INSUFFICIENT_POINTS":
            results.refused += 1
        elif errors:
            problem = f"{op}: {errors[0]['code']}"
    if problem:
        results.errors += 1
        if len(results.error_examples) < 5:
            results.error_examples.append(problem)
    return True


def _code(payload: dict[str, Any]) -> str | None:
    """The code of a response's first top-level GraphQL error, if it has one."""
    errors = payload.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    code = (errors[0].get("extensions") or {}).get("code")
    return code if isinstance(code, str) else None


def _server_figures(
    seconds: float | None, elapsed: float, operations: int, items: int
) -> dict[str, float | None]:
    """The server's CPU: per operation (and per bulk item), and in cores over the run;
    None where the server is not on this machine."""
    if seconds is None:
        return {"server_cpu_ms_per_op": None, "server_cpu_cores": None,
                "server_cpu_ms_per_item": None}  # fmt: skip
    return {
        "server_cpu_ms_per_op": round(seconds * 1000 / operations, 3) if operations else None,
        "server_cpu_cores": round(seconds / elapsed, 3),
        "server_cpu_ms_per_item": round(seconds * 1000 / items, 4) if items else None,
    }


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run_load(
    url: str,
    partners: list[BenchPartner],
    refs: list[str],
    *,
    concurrency: int,
    duration: float,
    mix: dict[str, int],
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Load the server and report; the server's CPU per operation when it runs on this
    machine (``server_pid``, or the local process listening on the URL's port)."""
    parsed = urlsplit(url)
    server = ServerCpu.find(host=parsed.hostname or "", port=parsed.port or 80, pid=server_pid)
    await _tokens(url, partners)
    results = Results()
    connections = [_Connection(url) for _ in range(concurrency)]
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    machine_before = machine_ticks()
    server.start()
    started = time.monotonic()
    deadline = started + duration
    await asyncio.gather(
        *(
            _worker(connection, partners, refs, mix, deadline, results, worker)
            for worker, connection in enumerate(connections)
        )
    )
    elapsed = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    server_seconds = server.seconds()
    machine_after = machine_ticks()
    for connection in connections:
        await connection.close()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    everything = [s for values in results.latencies.values() for s in values]
    busy, total = (machine_after[0] - machine_before[0], machine_after[1] - machine_before[1])
    per_op = {
        op: {
            "count": len(values),
            "p50_ms": round(_percentile(values, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(values, 0.99) * 1000, 2),
        }
        for op, values in sorted(results.latencies.items())
    }
    return {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "partners": len({partner.partner_id for partner in partners}),
        "clients": len(partners),
        "members": len(refs),
        "operations": len(everything),
        "ops_per_s": round(len(everything) / elapsed, 1),
        "p50_ms": round(_percentile(everything, 0.50) * 1000, 2),
        "p95_ms": round(_percentile(everything, 0.95) * 1000, 2),
        "p99_ms": round(_percentile(everything, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(everything) * 1000, 2) if everything else 0.0,
        "errors": results.errors,
        "error_examples": results.error_examples,
        "refused_insufficient_points": results.refused,
        "throttled": results.throttled,
        "bulk_items_per_s": round(results.bulk_items / elapsed, 1),
        "bench_cpu_share": round(cpu / elapsed, 3),
        **_server_figures(server_seconds, elapsed, len(everything), results.bulk_items),
        "machine_busy_share": round(busy / total, 3) if total else None,
        "by_operation": per_op,
    }
