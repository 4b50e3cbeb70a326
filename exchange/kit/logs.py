"""The server's log: one event a line, as text or as JSON (``EXCHANGE_LOG_FORMAT``),
configured once at startup by :func:`configure` (``exchange serve``, which hands the
same :func:`config` to uvicorn so that every worker process logs alike).

- Every line carries the request id when one is known: the HTTP layer binds it to
  :data:`REQUEST_ID` for the request (``exchange.http.request_ids``), or a call passes
  ``extra={"request_id": ...}``.
- A client's mistake is one INFO line; a traceback is logged only for a real failure
  (ERROR, with ``exc_info``).
- Nothing a client controls is trusted to be clean: the formatters blank e-mail
  addresses, international phone numbers, JSON Web Tokens and bearer credentials in
  every line (the traceback included), and :func:`without_values` blanks the quoted
  values a client's input puts into an error message.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: The request being served, for every line logged while it is.
REQUEST_ID: ContextVar[str | None] = ContextVar("exchange_request_id", default=None)

_REDACTIONS = [
    # a JSON Web Token (an access token, a client assertion): three base64url parts
    (re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*"), "[token]"),
    # the credentials of an Authorization header
    (re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]+", re.IGNORECASE), r"\1 [credentials]"),
    # a secret passed as a form or query value
    (re.compile(r"\b(\w*(?:secret|token|assertion|password))=[^&\s\"']+"), r"\1=[redacted]"),
    (re.compile(r"[\w.!#$%&*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"), "[e-mail]"),
    (re.compile(r"(?<![\w+])\+[1-9][\d ().-]{6,18}\d"), "[phone]"),
]
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def redact(text: str) -> str:
    """``text`` with e-mail addresses, phone numbers, tokens and credentials blanked."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def without_values(message: str) -> str:
    """An error message about a client's input on one line, its quoted values blanked
    (they may be anything the client sent: an e-mail in a number's place, a ref)."""
    return " ".join(_QUOTED.sub("'…'", message).split())


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id``: its own, or the request being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = REQUEST_ID.get()
        return True


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [request <id>] <message>``, then the traceback of an
    error, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        where = f" [request {request_id}]" if request_id else ""
        line = f"{_time(record)} {record.levelname} {record.name}{where} {record.getMessage()}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message``, and
    ``request_id`` when known and ``exception`` (the traceback) for an error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = str(request_id)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def check_format(value: str) -> LogFormat:
    """``EXCHANGE_LOG_FORMAT``: text (the default) or json."""
    chosen = value.strip().lower() or "text"
    for known in LOG_FORMATS:
        if chosen == known:
            return known
    raise ValueError(f"EXCHANGE_LOG_FORMAT must be text or json, not {value!r}")


def config(
    log_format: LogFormat, *, level: str = "INFO", stream: IO[str] | None = None
) -> dict[str, Any]:
    """The logging configuration (``logging.config.dictConfig``): one handler on the
    root logger, to stderr (or ``stream``), that every logger (uvicorn's too) reaches."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        # loggers made at import time (``log = logging.getLogger(__name__)``) stay on
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"line": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["request_id"],
                "stream": stream if stream is not None else "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        # uvicorn's loggers have handlers of their own only under its default config
        "loggers": {
            name: {"level": level, "handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error")
        },
    }


def configure(log_format: LogFormat, *, stream: IO[str] | None = None) -> None:
    """Configure the process's logging (once, at startup)."""
    logging.config.dictConfig(config(log_format, stream=stream))
