"""EXCHANGE_LOG_FORMAT, and what the log formatters blank in every line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exchange.kit import logs
from exchange.kit.settings import Settings


@pytest.mark.parametrize(
    ("value", "chosen"), [(None, "text"), ("text", "text"), (" JSON ", "json")]
)
def test_the_log_format_is_text_unless_the_environment_asks_for_json(
    value: str | None, chosen: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    environ = {"EXCHANGE_HOME": str(tmp_path)}
    if value is not None:
        environ["EXCHANGE_LOG_FORMAT"] = value
    assert Settings.from_environment(environ).log_format == chosen


def test_an_unknown_log_format_is_refused_by_name(tmp_path: Path) -> None:
    environ = {"EXCHANGE_HOME": str(tmp_path), "EXCHANGE_LOG_FORMAT": "xml"}
    with pytest.raises(ValueError, match="EXCHANGE_LOG_FORMAT must be text or json, not 'xml'"):
        Settings.from_environment(environ)


@pytest.mark.parametrize("formatter", [logs.TextFormatter(), logs.JsonFormatter()])
def test_every_line_has_e_mails_phones_tokens_and_credentials_blanked(
    formatter: logging.Formatter,
) -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwdF8xIn0.c2lnbmF0dXJl"
    record = logging.LogRecord(
        "exchange.test", logging.INFO, __file__, 1,
        "to %s at +44 20 7946 0958 with %s, Basic cHRfMTpzM2NyM3Q= and client_secret=s3cr3t&x",
        ("ana@example.org", f"Bearer {token}"), None,
    )  # fmt: skip

    line = formatter.format(record)

    for private in ("ana@example.org", "7946", token, "cHRfMTpzM2NyM3Q", "s3cr3t"):
        assert private not in line
    assert "[e-mail]" in line
    assert "[phone]" in line
