"""The loyalty engine's operator commands: a partner's earn rate and points cap, contract
changes from a date, tiers, the campaign list. They run in this process through the
command's own entry point (tests/cli/test_cli.py runs the command as a real process)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from exchange.cli import main
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.system import SYSTEM
from exchange.loyalty import campaigns
from exchange.loyalty.campaigns import CampaignDraft
from exchange.loyalty.models import Effect, EffectKind
from tests.conftest import TEST_SECRET_KEY


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[[list[str], str], Ran]:
    """``exchange ARGS`` against a database, as main() runs it; its status and output."""

    def run(args: list[str], database_url: str) -> Ran:
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("EXCHANGE_HOME", str(tmp_path))
        monkeypatch.setenv("EXCHANGE_SECRET_KEY", TEST_SECRET_KEY)
        capsys.readouterr()
        status = main(args)
        out, err = capsys.readouterr()
        return Ran(status, out, err)

    return run


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_partner_gets_an_earn_rate_and_a_cap_and_changes_them_from_a_date(
    database_url: str, cli: Callable[[list[str], str], Ran]
) -> None:
    run = cli
    name = f"Cinema {secrets.token_hex(3)}"
    tomorrow = (utc_now() + timedelta(days=1)).date().isoformat()
    added = run(["partner", "add", name, "--currency", "USD", "--issue-price", "0.01",
                 "--redemption-price", "0.008", "--earn-rate", "2.5",
                 "--max-points-per-operation", "500", "--json"],
                database_url)  # fmt: skip
    changed = run(["partner", "contract", name, "--effective-from", tomorrow,
                   "--earn-rate", "3", "--json"], database_url)  # fmt: skip
    backdated = run(["partner", "contract", name, "--effective-from", "2020-01-01",
                     "--earn-rate", "4"], database_url)  # fmt: skip
    empty = run(["partner", "contract", name, "--effective-from", tomorrow], database_url)

    assert added.returncode == 0, added.stderr
    first = json.loads(added.stdout)
    assert (first["earnRate"], first["maxPointsPerOperation"]) == ("2.5", 500)
    assert changed.returncode == 0, changed.stderr
    second = json.loads(changed.stdout)
    assert (second["contractVersion"], second["earnRate"], second["issuePrice"]) == (2, "3", "0.01")
    assert second["maxPointsPerOperation"] == 500
    assert backdated.returncode == 1
    assert "effectiveFrom must be now or later" in _one_line(backdated.stderr)
    assert empty.returncode == 2
    assert "name at least one term" in _one_line(empty.stderr)


def test_tiers_are_set_listed_and_reviewed(
    scratch_database_url: str, cli: Callable[[list[str], str], Ran]
) -> None:
    run = cli
    url = scratch_database_url
    silver = run(["tier", "set", "Silver", "--qualifying-points", "0", "--earn-multiplier", "1"],
                 url)  # fmt: skip
    gold = run(["tier", "set", "Gold", "--qualifying-points", "1000", "--earn-multiplier", "1.5"],
               url)  # fmt: skip
    clash = run(["tier", "set", "Rose", "--qualifying-points", "1000", "--earn-multiplier", "2"],
                url)  # fmt: skip
    silly = run(["tier", "set", "Lead", "--qualifying-points", "5", "--earn-multiplier", "0.5"],
                url)  # fmt: skip
    listed = run(["tier", "list", "--json"], url)
    reviewed = run(["tier", "review", "--as-of", "2030-01-01T00:00:00+00:00"], url)

    assert (silver.returncode, gold.returncode) == (0, 0), silver.stderr + gold.stderr
    assert gold.stdout.strip() == "tier Gold: from 1,000 qualifying points, earn 1.5x"
    assert clash.returncode == 1
    assert "tier Gold already starts at 1000" in _one_line(clash.stderr)
    assert silly.returncode == 1
    assert "earn multiplier is from 1 to 10" in _one_line(silly.stderr)
    assert json.loads(listed.stdout) == [
        {"name": "Silver", "qualifyingPoints": 0, "earnMultiplier": "1", "members": 0},
        {"name": "Gold", "qualifyingPoints": 1000, "earnMultiplier": "1.5", "members": 0},
    ]
    assert reviewed.returncode == 0, reviewed.stderr
    assert reviewed.stdout.startswith("reviewed 0 members; 0 went down a tier")


def test_the_campaign_list_shows_every_campaign_with_its_owner_and_spending(
    scratch_database_url: str, cli: Callable[[list[str], str], Ran]
) -> None:
    run = cli
    empty = run(["campaign", "list"], scratch_database_url)
    asyncio.run(_a_coalition_campaign(scratch_database_url))
    listed = run(["campaign", "list", "--json"], scratch_database_url)
    drafts = run(["campaign", "list", "--status", "ACTIVE", "--json"], scratch_database_url)

    assert empty.stdout.startswith("no campaigns yet")
    [shown] = json.loads(listed.stdout)
    assert {k: shown[k] for k in ("name", "status", "owner", "effect", "budgetPoints",
                                  "spentPoints", "condition")} == {
        "name": "Double weekend", "status": "DRAFT", "owner": "coalition",
        "effect": "MULTIPLIER 2", "budgetPoints": 10_000, "spentPoints": 0,
        "condition": "purchase.weekday >= 6",
    }  # fmt: skip
    assert shown["funding"] == [{"funder": "coalition", "share": "1", "accepted": True}]
    assert json.loads(drafts.stdout) == []


async def _a_coalition_campaign(url: str) -> None:
    database = Database(url, pool_size=1)
    try:
        async with database.transaction(SYSTEM) as conn:
            await campaigns.create(
                conn,
                owner=None,
                draft=CampaignDraft(
                    name="Double weekend",
                    starts_at=utc_now(),
                    effect=Effect(EffectKind.MULTIPLIER, Decimal("2")),
                    condition="purchase.weekday >= 6",
                    budget_points=10_000,
                ),
                created_by="test",
                now=utc_now(),
            )
    finally:
        await database.dispose()
