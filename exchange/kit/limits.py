"""Every limit on what a client may send, written down once (docs/api.md, "Limits",
lists them; decision 0008 says where each is checked).

The numbers are read by the HTTP body reader (``exchange.http.body``), the GraphQL
schema and its translation (global IDs, cursors, pages), the request types of the
ledger, identity and settlement, and the OAuth server. The checks that several of them
share live here too, so every edge refuses the same values with the same words:

- :func:`text`: a string a client sent, within a length, with no NUL (PostgreSQL can't
  store it) and no unpaired surrogate (it can't be encoded as UTF-8);
- :func:`int64_digits`: a database id written in ASCII digits, within 64 bits;
- :func:`decimal`: an exact decimal within a magnitude and a number of places;
- :func:`json_problem`: a JSON body that is not UTF-8, nests too deep or is not an
  object, found before any parser recurses into it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from exchange.kit.errors import InvalidInput

# --- Request bodies, read before anything parses them (exchange.http.body) -----------
GRAPHQL_BODY_BYTES = 256 * 1024
OAUTH_BODY_BYTES = 64 * 1024
OTHER_BODY_BYTES = 64 * 1024
#: ``POST /bulk/earn`` (NDJSON earn items): read after the token is checked.
BULK_BODY_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 32

# --- GraphQL documents (graphql_schema.schema) ---------------------------------------
MAX_QUERY_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 5_000
#: Automatic persisted queries each server process remembers (exchange.http.persisted),
#: the least recently used forgotten first.
PERSISTED_QUERIES = 1_000
DEFAULT_PAGE = 20
MAX_PAGE = 100
#: Entries one ledger read returns at most (the API asks for MAX_PAGE + 1).
MAX_LEDGER_PAGE = 1_000

# --- OAuth form posts (partners.oauth, partners.tokens) ------------------------------
MAX_FORM_VALUE = 8_192
MAX_CLIENT_ID_LENGTH = 200
MAX_ASSERTION_ID_LENGTH = 200
MAX_TOKEN_LENGTH = 4_096

# --- Identifiers and text ------------------------------------------------------------
#: Database ids (entries, holds, partners, members, settlement runs) are signed 64-bit.
MAX_ID = 2**63 - 1
MAX_ID_DIGITS = len(str(MAX_ID))
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_MEMBER_REF_LENGTH = 200
MAX_REFERENCE_LENGTH = 200
MAX_REASON_LENGTH = 500
MAX_EMAIL_LENGTH = 254
#: A phone number as typed, punctuation included, before it is reduced to E.164.
MAX_PHONE_LENGTH = 40

# --- Points --------------------------------------------------------------------------
#: Points are signed 64-bit in the database; one operation stays far below that.
MAX_POINTS_PER_OPERATION = 1_000_000_000_000
MAX_BATCH = 1_000
MAX_HOLD_TTL_SECONDS = 7 * 24 * 3600
MAX_EXPIRING_WITHIN_DAYS = 3_660
#: The most (issuer, expiry) groups one read of expiring points returns, soonest first: a
#: wallet with thousands of lots in the window must not make one read return them all.
MAX_EXPIRING_GROUPS = 100
MAX_LIFETIME_DAYS = 3_650

# --- Transfers between members (exchange.usecases.points) ----------------------------
#: Failed recipient look-ups (no member has the e-mail or phone) one sending member may
#: make in any window of FAILED_LOOKUP_WINDOW_SECONDS; then every transfer it attempts
#: is refused until one comes back (one per window: docs/decisions/0013).
MAX_FAILED_RECIPIENT_LOOKUPS = 5
FAILED_LOOKUP_WINDOW_SECONDS = 24 * 3600

# --- Time ----------------------------------------------------------------------------
#: Times a caller may give: wide enough for any real booking, narrow enough that adding
#: a lifetime of years or converting between offsets can never overflow.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

# --- Money ---------------------------------------------------------------------------
#: Exchange rates and contract prices: at most this many digits before the point...
DECIMAL_INTEGER_DIGITS = 12
#: ... and after it (exchange rates) ...
DECIMAL_FRACTION_DIGITS = 12
#: ... or after it in a contract's prices (stored as NUMERIC(20, 8)).
PRICE_FRACTION_DIGITS = 8
#: Exchange rates one settlement run may be given.
MAX_RATES = 50
#: Points per currency unit a contract may give.
MAX_EARN_RATE = Decimal(1000)

# --- Webhooks (exchange.events) ------------------------------------------------------
MAX_WEBHOOK_URL_LENGTH = 2_000
MAX_WEBHOOK_EVENT_TYPES = 50
#: Endpoints one partner (or the operators together) may have.
MAX_WEBHOOK_ENDPOINTS = 20

# --- Purchases and campaigns (exchange.loyalty) ---------------------------------------
#: One purchase's amount, in currency units (a billion).
MAX_PURCHASE_AMOUNT = Decimal(1_000_000_000)
MAX_PURCHASE_ITEMS = 200
MAX_ITEM_QUANTITY = 1_000_000
#: A category, a SKU, a store reference.
MAX_LABEL_LENGTH = 100
MAX_CONDITION_LENGTH = 1_000
MAX_CAMPAIGN_NAME_LENGTH = 100
MAX_EFFECT_VALUE = Decimal(1_000_000)
MAX_FUNDERS = 10
#: Decimals of a funder's share (stored as NUMERIC(7, 6)).
SHARE_FRACTION_DIGITS = 6
#: A budget, a per-member limit, an award cap.
MAX_CAMPAIGN_COUNT = 10**12
#: Recorded purchases one simulation replays at most.
MAX_SIMULATED = 20_000
MAX_TIERS = 20
#: Custom segments per partner (and the operator's); each is evaluated per member.
MAX_SEGMENTS = 100
#: A targeted campaign's offer, as members read it in their wallet.
MAX_OFFER_TITLE_LENGTH = 100
MAX_OFFER_DESCRIPTION_LENGTH = 500
#: A control share has at most this many decimals (0.1 = 10 %).
CONTROL_SHARE_DIGITS = 4
#: Offers a wallet lists, newest first.
MAX_WALLET_OFFERS = 100
MAX_TIER_NAME_LENGTH = 40
MAX_TIER_MULTIPLIER = Decimal(10)

_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def unsafe(value: str) -> bool:
    """Whether a string holds a NUL or an unpaired surrogate."""
    return _UNSAFE.search(value) is not None


def text(value: object, name: str, *, max_length: int, min_length: int = 1) -> str:
    """A string a client sent for ``name``: ``min_length`` to ``max_length`` characters,
    no NUL, no unpaired surrogate; INVALID_INPUT naming the field otherwise."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=[name])
    if not min_length <= len(value) <= max_length:
        span = f"at most {max_length}" if min_length == 0 else f"{min_length} to {max_length}"
        raise InvalidInput(f"{name} must be {span} characters", field=[name])
    if unsafe(value):
        raise InvalidInput(
            f"{name} must not contain NUL characters or unpaired surrogates", field=[name]
        )
    return value


def optional_text(value: object, name: str, *, max_length: int) -> str | None:
    """:func:`text` for an optional string (None stays None; empty is allowed)."""
    return None if value is None else text(value, name, max_length=max_length, min_length=0)


def int64_digits(digits: str) -> int | None:
    """A positive database id written as ASCII digits with no sign and no leading zero,
    within 64 bits; None for anything else (Unicode digits, '²', 20 digits, '007')."""
    if not digits.isascii() or not digits.isdigit() or len(digits) > MAX_ID_DIGITS:
        return None
    if digits.startswith("0"):
        return None
    number = int(digits)
    return number if number <= MAX_ID else None


def decimal(
    value: object,
    name: str,
    *,
    integer_digits: int = DECIMAL_INTEGER_DIGITS,
    fraction_digits: int = DECIMAL_FRACTION_DIGITS,
    allow_zero: bool = False,
) -> Decimal:
    """A finite decimal above zero (or zero, with ``allow_zero``) with at most
    ``integer_digits`` digits before the point and ``fraction_digits`` after it; never a
    float; INVALID_INPUT naming the field otherwise."""
    if isinstance(value, float):
        raise InvalidInput(f"{name} must be given as a decimal string, not a float", field=[name])
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{name} must be a decimal number", field=[name]) from None
    if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
        least = "zero or more" if allow_zero else "above zero"
        raise InvalidInput(f"{name} must be a decimal number {least}", field=[name])
    exponent = number.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if number.adjusted() >= integer_digits or places > fraction_digits:
        raise InvalidInput(
            f"{name} must have at most {integer_digits} digits before the point and"
            f" {fraction_digits} after it",
            field=[name],
        )
    return number


# A JSON string (escapes included) or one bracket: what nesting is counted over.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def json_problem(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """What is wrong with a JSON request body before it is parsed, or None: it must be
    UTF-8, nest at most ``max_depth`` arrays and objects, and be an object. Nesting is
    counted by a scan that never recurses (a parser would, and a deep enough body
    exhausts Python's stack). Whether it is valid JSON is the parser's to say."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "the request body is not UTF-8"
    if not body.lstrip().startswith(b"{"):
        return "the request body must be a JSON object"
    if body.count(b"{") + body.count(b"[") <= max_depth:
        return None  # fewer openers than the limit, wherever they are: no scan needed
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token[0] in _OPENERS:
            depth += 1
            if depth > max_depth:
                return f"the request body nests deeper than {max_depth} levels"
        elif token[0] != ord('"'):
            depth -= 1
    return None
