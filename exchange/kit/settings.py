"""Settings from the environment (and an optional ``.env`` in the working directory).

``DATABASE_URL``        unset: a private embedded PostgreSQL under EXCHANGE_HOME
``EXCHANGE_HOME``       data directory: embedded database, keys, reports
``EXCHANGE_PUBLIC_URL`` the URL clients reach the service at; the OAuth issuer
                        (default: http://127.0.0.1:8000, or what `serve` listens on)
``EXCHANGE_SECRET_KEY`` pepper for blind indexes and key encryption; generated into
                        EXCHANGE_HOME on first use when unset. Never printed.
``EXCHANGE_K_ANONYMITY`` cross-partner figures only over at least this many members
                        (default 20)
``EXCHANGE_DB_POOL_SIZE`` database connections each server process may hold, opened as
                        needed and closed after five idle minutes (default 20: every
                        request a worker serves at 16 clients, and its background work)
``EXCHANGE_DB_POOL_OVERFLOW`` more connections a process may open in a burst, on the same
                        terms (default 0: a request waits for a pooled one)
``EXCHANGE_DB_POOL_TIMEOUT_S`` how long a request waits for a pooled connection before
                        it is answered 503 (default 10)
``EXCHANGE_MAX_TOKEN_LIFETIME_S`` the longest access-token lifetime (``exp - iat``, in
                        seconds) verification accepts, even from a token our own key
                        signed; tokens are issued no longer (default 3600)
``EXCHANGE_CORS_ORIGINS`` comma-separated origins (``https://wallet.example``) whose
                        browser pages may call the API (CORS); unset: none, and no
                        CORS headers at all
``EXCHANGE_LOG_FORMAT`` the server's log lines: ``text`` (default) or ``json``, one
                        object a line (exchange.kit.logs)
"""

from __future__ import annotations

import os
import secrets
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from exchange.kit.logs import LogFormat, check_format

SECRET_KEY_FILE = "secret.key"  # noqa: S105 (a file name, not a secret)
DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 3600


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def _positive_seconds(values: dict[str, str], name: str, default: int) -> int:
    raw = (values.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
        raise ValueError(f"{name} must be a whole number of seconds above 0, not {raw!r}")
    return int(raw)


def _origins(values: dict[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated origins, as a browser sends them in ``Origin``:
    ``scheme://host[:port]`` (http or https, no path), in lower case, without a default
    port."""
    origins = []
    for raw in (values.get(name) or "").split(","):
        origin = raw.strip()
        if not origin:
            continue
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or parts.scheme.lower() not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.password is not None
            or parts.path
            or parts.query
            or parts.fragment
            or origin.endswith(("?", "#"))
        ):
            raise ValueError(
                f"{name}: {origin!r} is not an origin; write scheme://host[:port],"
                " e.g. https://wallet.example or http://localhost:3000"
            )
        scheme = parts.scheme.lower()
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        default = {"http": 80, "https": 443}[scheme]  # a browser leaves it out
        origins.append(f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else ""))
    return tuple(dict.fromkeys(origins))


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coalition-exchange"


@dataclass(frozen=True)
class Tunables:
    """The numbers the domain reads at run time (no secrets): use cases get them as
    ``call.tunables``."""

    #: Qualifying points for a tier count over this many months (EXCHANGE_TIER_WINDOW_MONTHS).
    tier_window_months: int = 12
    #: A member keeps a tier it no longer qualifies for until this many days after the
    #: month end the review runs at (EXCHANGE_TIER_GRACE_DAYS).
    tier_grace_days: int = 30
    #: Webhooks may go to http:// and to private, loopback and link-local addresses
    #: (EXCHANGE_WEBHOOK_ALLOW_PRIVATE=true): development and tests only.
    webhook_allow_private: bool = False
    #: Delivered and failed events are kept this many days (EXCHANGE_EVENTS_RETENTION_DAYS).
    events_retention_days: int = 30
    #: points.expiring is sent this many days before a lot expires
    #: (EXCHANGE_EXPIRING_NOTICE_DAYS).
    expiring_notice_days: int = 14
    #: Cross-partner figures are shown only over at least this many members; below it
    #: the row is absent (EXCHANGE_K_ANONYMITY).
    k_anonymity: int = 20
    #: `serve` recomputes RFM quintiles this often (EXCHANGE_RFM_REFRESH_MINUTES).
    rfm_refresh_minutes: int = 60

    @classmethod
    def from_values(cls, values: dict[str, str]) -> Tunables:
        return cls(
            tier_window_months=_positive(values, "EXCHANGE_TIER_WINDOW_MONTHS", 12, 120),
            tier_grace_days=_positive(values, "EXCHANGE_TIER_GRACE_DAYS", 30, 366),
            webhook_allow_private=_flag(values, "EXCHANGE_WEBHOOK_ALLOW_PRIVATE"),
            events_retention_days=_positive(values, "EXCHANGE_EVENTS_RETENTION_DAYS", 30, 3660),
            expiring_notice_days=_positive(values, "EXCHANGE_EXPIRING_NOTICE_DAYS", 14, 365),
            k_anonymity=_positive(values, "EXCHANGE_K_ANONYMITY", 20, 1_000_000),
            rfm_refresh_minutes=_positive(values, "EXCHANGE_RFM_REFRESH_MINUTES", 60, 10_080),
        )


def _flag(values: dict[str, str], name: str) -> bool:
    raw = (values.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def _positive(values: dict[str, str], name: str, default: int, most: int) -> int:
    raw = (values.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ValueError(f"{name} must be a whole number from 1 to {most}, not {raw!r}")
    return int(raw)


def _count(values: dict[str, str], name: str, default: int, least: int, most: int) -> int:
    raw = (values.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or not least <= int(raw) <= most:
        raise ValueError(f"{name} must be a whole number from {least} to {most}, not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Pool:
    """The database connection pool of a server process (EXCHANGE_DB_POOL_*). Sized to
    what a worker serves at once, with no overflow: an overflow connection is opened for
    one request and closed after it (a new backend, and asyncpg's type introspection,
    every time), which at 16 clients on one worker happened on most requests."""

    size: int = 20
    overflow: int = 0
    timeout_seconds: int = 10

    @classmethod
    def from_values(cls, values: dict[str, str]) -> Pool:
        return cls(
            size=_count(values, "EXCHANGE_DB_POOL_SIZE", 20, 1, 1000),
            overflow=_count(values, "EXCHANGE_DB_POOL_OVERFLOW", 0, 0, 1000),
            timeout_seconds=_count(values, "EXCHANGE_DB_POOL_TIMEOUT_S", 10, 1, 600),
        )


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None
    secret_key_from_env: str | None = field(default=None, repr=False)
    public_url: str = "http://127.0.0.1:8000"
    #: Concurrent earns of one caller share a transaction (EXCHANGE_MICRO_BATCHING=off
    #: turns it off, to measure what it brings).
    micro_batching: bool = True
    #: Each `serve` worker delivers webhooks (EXCHANGE_SERVE_DELIVERY=off leaves them to
    #: `exchange events deliver` processes, on other machines if need be).
    serve_delivery: bool = True
    tunables: Tunables = field(default_factory=Tunables)
    #: EXCHANGE_MAX_TOKEN_LIFETIME_S: a token whose ``exp - iat`` is longer is refused.
    max_token_lifetime_seconds: int = DEFAULT_MAX_TOKEN_LIFETIME_SECONDS
    #: EXCHANGE_CORS_ORIGINS: the browser origins that may call the API (none: no CORS).
    cors_origins: tuple[str, ...] = ()
    #: EXCHANGE_LOG_FORMAT: how the server writes its log lines.
    log_format: LogFormat = "text"
    pool: Pool = field(default_factory=Pool)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        values = _read_dotenv(Path.cwd() / ".env")
        values.update(environ if environ is not None else os.environ)
        home = Path(values.get("EXCHANGE_HOME") or default_home()).expanduser()
        return cls(
            home=home,
            database_url=values.get("DATABASE_URL") or None,
            secret_key_from_env=values.get("EXCHANGE_SECRET_KEY") or None,
            public_url=(values.get("EXCHANGE_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
            micro_batching=(values.get("EXCHANGE_MICRO_BATCHING") or "on").strip().lower()
            not in ("off", "0", "false", "no"),
            serve_delivery=(values.get("EXCHANGE_SERVE_DELIVERY") or "on").strip().lower()
            not in ("off", "0", "false", "no"),
            tunables=Tunables.from_values(values),
            max_token_lifetime_seconds=_positive_seconds(
                values, "EXCHANGE_MAX_TOKEN_LIFETIME_S", DEFAULT_MAX_TOKEN_LIFETIME_SECONDS
            ),
            cors_origins=_origins(values, "EXCHANGE_CORS_ORIGINS"),
            log_format=check_format(values.get("EXCHANGE_LOG_FORMAT") or ""),
            pool=Pool.from_values(values),
        )

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.home

    def secret_key(self) -> bytes:
        """The pepper: from the environment, else generated once into EXCHANGE_HOME."""
        if self.secret_key_from_env:
            return self.secret_key_from_env.encode()
        path = self.ensure_home() / SECRET_KEY_FILE
        if not path.exists():
            _create_once(path, secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def _create_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless another process already has. The text is written
    whole to a private file (mode 0600) beside it, then linked into place: a link is
    atomic and fails if the name exists, so of processes starting together (``exchange
    serve --workers N`` on a fresh home) the first to link wins, none reads half a key,
    and the others read the winner's. On a file system without hard links the name is
    claimed by an exclusive create instead (the first to create it wins)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process's key is in place: it stands
        except OSError:  # a file system without hard links
            with suppress(FileExistsError):
                claimed = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(claimed, "w") as handle:
                    handle.write(text)
    finally:
        os.unlink(temporary)
