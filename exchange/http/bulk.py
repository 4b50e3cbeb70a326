"""``POST /bulk/earn``: bulk issuance without GraphQL, NDJSON in and out.

The body (``application/x-ndjson``) is one earn item per line, with the fields of
``EarnPointsInput``: ``idempotencyKey``, ``memberRef``, ``points``, and optionally
``reference`` and ``expiresAt`` (ISO 8601 with an offset). The token is checked before a
byte of the body is read; the body is then read within its own limit
(:data:`exchange.kit.limits.BULK_BODY_BYTES`, counted as it arrives: a larger one is a 413
before the rest is read). Items go, 1,000 at a time, to the use case ``earnPointsBatch``
runs (scope ``points:earn``, the caller's row-level-security scope, the one ledger
writer), so idempotency is the same: a replayed key returns the first result.

The answer is NDJSON too, one line per item in the order sent:
``{"line", "idempotencyKey", "transaction": {"id", "points"}, "replayed", "userErrors"}``;
a line that is not a valid item fails alone (``INVALID_INPUT`` with the ``field``), and
so does an item the ledger refuses. A request refused as a whole (no token, no scope, an
empty body, the database down before the first item) gets a JSON error and moves
nothing. Should the database go away later, the items not yet written say so
(``SERVICE_UNAVAILABLE``) and may be sent again with the same keys.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from exchange.http import oauth
from exchange.http.body import ClientGone, read_body
from exchange.http.errors import graphql_error
from exchange.kit import limits
from exchange.kit.errors import DatabaseUnavailable, DomainError, ErrorCode, InvalidInput
from exchange.ledger import MAX_BATCH
from exchange.ledger.models import EntryResult
from exchange.usecases import points as point_cases
from exchange.usecases.runner import Runner
from graphql_schema import ids
from partners.principal import Principal

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
FIELDS = {
    "idempotencyKey": "idempotency_key",
    "memberRef": "member_ref",
    "points": "points",
    "reference": "reference",
    "expiresAt": "expires_at",
}


@dataclass(frozen=True)
class Line:
    """One line of the body: its number (from 1), and its item or why it is not one."""

    number: int
    item: point_cases.EarnPoints | None
    key: str | None
    error: DomainError | None = None


def _string(value: object, name: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=[name])
    return value


def _points(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("points must be a whole number", field=["points"])
    return value


def _expiry(value: object) -> datetime | None:
    text = _string(value, "expiresAt", optional=True)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("expiresAt must be ISO 8601", field=["expiresAt"]) from None
    if moment.tzinfo is None:
        raise InvalidInput("expiresAt needs an offset (e.g. Z)", field=["expiresAt"])
    return moment


def parse_line(number: int, raw: bytes) -> Line:
    """An item from one NDJSON line, or the error of that line alone."""
    key = None
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise InvalidInput("a line must be a JSON object (an earn item)")
        raw_key = data.get("idempotencyKey")
        key = raw_key if isinstance(raw_key, str) else None
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise InvalidInput(f"unknown field {unknown[0]!r}", field=[str(unknown[0])[:100]])
        for required in ("idempotencyKey", "memberRef", "points"):
            if required not in data:
                raise InvalidInput(f"{required} is required", field=[required])
        item = point_cases.EarnPoints(
            idempotency_key=str(_string(data["idempotencyKey"], "idempotencyKey")),
            member_ref=str(_string(data["memberRef"], "memberRef")),
            points=_points(data["points"]),
            reference=_string(data.get("reference"), "reference", optional=True),
            expires_at=_expiry(data.get("expiresAt")),
        )
    except orjson.JSONDecodeError as error:
        return Line(number, None, None, InvalidInput(f"the line is not JSON: {error.msg}"))
    except DomainError as error:
        return Line(number, None, key, error)
    return Line(number, item, key)


RawLine = tuple[int, bytes]


def raw_lines(body: bytes) -> list[RawLine]:
    """Every non-blank line of the body with its number as sent, not parsed yet: each
    thousand is parsed when its turn comes, so a 64 MiB body is never held as objects."""
    return [(number, raw) for number, raw in enumerate(body.split(b"\n"), start=1) if raw.strip()]


def _result(line: Line, outcome: EntryResult | DomainError) -> bytes:
    key = line.item.idempotency_key if line.item is not None else line.key
    answer: dict[str, Any] = {"line": line.number, "idempotencyKey": key}
    if isinstance(outcome, EntryResult):
        answer["transaction"] = {
            "id": ids.encode("Transaction", outcome.entry.id),
            "points": str(outcome.entry.points),
        }
        answer["replayed"] = outcome.replayed
        answer["userErrors"] = []
    else:
        answer["transaction"] = None
        answer["userErrors"] = [
            {"field": outcome.field, "code": str(outcome.code), "message": outcome.message}
        ]
    return orjson.dumps(answer) + b"\n"


def _own_field(error: DomainError, index: int) -> DomainError:
    """The batch names an item's field ``items.<n>.<field>``; a line names its own."""
    if error.field and error.field[:2] == ["items", str(index)]:
        error.field = error.field[2:] or None
    return error


async def _earn(runner: Runner, principal: Principal, raw: Sequence[RawLine]) -> bytes:
    """One chunk of lines through the batch use case: their result lines, in order."""
    chunk = [parse_line(number, line) for number, line in raw]
    valid = [line for line in chunk if line.item is not None]
    outcomes: list[EntryResult | DomainError] = []
    if valid:
        items = [line.item for line in valid if line.item is not None]
        outcomes = await runner.run(principal, point_cases.earn_points_batch, items)
    by_line = {
        line.number: _own_field(outcome, index) if isinstance(outcome, DomainError) else outcome
        for index, (line, outcome) in enumerate(zip(valid, outcomes, strict=True))
    }
    return b"".join(
        _result(line, by_line[line.number] if line.error is None else line.error) for line in chunk
    )


UNAVAILABLE = {
    "field": None,
    "code": "SERVICE_UNAVAILABLE",
    "message": "the database became unavailable before this item was written; send it again",
}


INTERNAL = {
    "field": None,
    "code": "INTERNAL_SERVER_ERROR",
    "message": "an unexpected error stopped the import before this item; it was logged",
}


def _not_written(raw: Sequence[RawLine], reason: dict[str, Any]) -> bytes:
    """Result lines for items that were not written, and why (``reason``)."""
    written = b""
    for line in (parse_line(number, text) for number, text in raw):
        if line.error is not None:
            written += _result(line, line.error)
            continue
        key = line.item.idempotency_key if line.item is not None else line.key
        answer = {"line": line.number, "idempotencyKey": key, "transaction": None,
                  "userErrors": [reason]}  # fmt: skip
        written += orjson.dumps(answer) + b"\n"
    return written


async def _rest(
    runner: Runner, principal: Principal, chunks: list[list[RawLine]], first: bytes
) -> AsyncIterator[bytes]:
    yield first
    for position, chunk in enumerate(chunks):
        try:
            written = await _earn(runner, principal, chunk)
        except DatabaseUnavailable:
            log.warning("bulk earn: the database went away after %d chunks", position + 1)
            reason = UNAVAILABLE
        except Exception:  # rolled back: nothing of the chunk was written
            log.exception("bulk earn: a chunk failed unexpectedly")
            reason = INTERNAL
        else:
            yield written
            continue
        for rest in chunks[position:]:
            yield _not_written(rest, reason)
        return


async def earn(request: Request) -> Response:
    """``POST /bulk/earn``: see the module's docstring."""
    principal = await oauth.authenticate(request)
    if not isinstance(principal, Principal):
        return principal
    try:
        body = await read_body(request.receive, limits.BULK_BODY_BYTES)
    except ClientGone:
        return Response(status_code=400)
    if body is None:
        return graphql_error(413, f"the request body is larger than {limits.BULK_BODY_BYTES} bytes")
    lines = raw_lines(body)
    del body
    if not lines:
        return graphql_error(400, "the body has no earn items: send one JSON object per line")
    chunks = [lines[start : start + MAX_BATCH] for start in range(0, len(lines), MAX_BATCH)]
    runner: Runner = request.app.state.runner
    try:
        first = await _earn(runner, principal, chunks[0])
    except DomainError as error:  # refused as a whole: the token lacks the scope
        return JSONResponse(
            {"errors": [{"message": error.message, "extensions": {"code": str(error.code)}}]},
            status_code=403 if error.code == ErrorCode.FORBIDDEN else 400,
        )
    return StreamingResponse(_rest(runner, principal, chunks[1:], first), media_type=NDJSON)
