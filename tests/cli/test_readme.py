"""The README's shell blocks run as written against the demo coalition's data, so its
commands cannot rot: every fenced ``bash`` block is either run here or skipped for a
reason stated below, and a new block fails the walk until it is one or the other."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cli.test_cli import serving
from tests.cli.test_demo import seed_demo
from tests.conftest import TEST_SECRET_KEY

README = Path(__file__).resolve().parents[2] / "README.md"

#: A block is named by its section's heading and its place in that section (1, 2, ...).
Block = tuple[str, int]

CALL_IT = "Call it"
SETTLE = "Settle a period (the finance team)"
COMMAND = "The command"

#: The blocks run by the tests below, and what runs them.
RUN: dict[Block, str] = {
    (CALL_IT, 1): "a token and earnPoints, on a server over the demo with its credentials",
    (CALL_IT, 2): "recordPurchase with the token of block 1, in the same shell",
    (CALL_IT, 3): "the token exchange for alice, in the same shell",
    (SETTLE, 1): "settle, finalize, every report, a payment and bean-check on the demo",
    (COMMAND, 1): "partner, contract, tier, campaign, member and audit examples on the demo",
}

#: The blocks not run, each with its reason.
SKIPPED: dict[Block, str] = {
    ("Run it (fresh machine, Python 3.11+)", 1): (
        "creates a virtualenv, installs the package from the network (the suite runs inside"
        " that install) and then serves until it is stopped; the demo seeding it does and"
        " the server it starts are what the Call it blocks run against"
    ),
    ("Benchmark it", 1): (
        "loads a server for minutes, needs pgbench and seeds a million members: too long"
        " and too heavy for CI; bench and bench seed have their own short tests"
        " (tests/cli/test_cli.py, tests/cli/test_seed.py)"
    ),
    ("Test it", 1): "it is this suite, in a fresh virtualenv: CI runs it as scripts/test",
}


def bash_blocks() -> dict[Block, str]:
    """Every fenced bash block of the README, by the heading above it and its place."""
    blocks: dict[Block, str] = {}
    sections = re.split(r"^## (.+)$", README.read_text(), flags=re.MULTILINE)
    for heading, body in zip(sections[1::2], sections[2::2], strict=True):
        found = re.findall(r"^```bash\n(.*?)^```", body, flags=re.DOTALL | re.MULTILINE)
        for place, script in enumerate(found, start=1):
            blocks[(heading.strip(), place)] = script
    return blocks


def run_script(script: str, *, database_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    """A README block in bash with -e, -u and pipefail, where the walk set the database
    up, with `exchange` and `bean-check` as this environment installed them."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXCHANGE_HOME": str(home),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(  # noqa: S603 (the README's own commands, one local run)
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607 (bash from PATH)
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def json_documents(output: str) -> list[Any]:
    """The JSON documents curl printed one after another (no newline between them)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(output):
        if output[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(output, at)
        documents.append(document)
    return documents


def test_every_bash_block_of_the_readme_is_run_or_skipped_for_a_stated_reason() -> None:
    blocks, decided = set(bash_blocks()), set(RUN) | set(SKIPPED)

    assert not set(RUN) & set(SKIPPED)
    assert blocks == decided, (
        f"README blocks neither run nor skipped: {sorted(blocks - decided)};"
        f" listed but gone: {sorted(decided - blocks)}"
    )
    assert all(reason.strip() for reason in SKIPPED.values())


async def test_the_readme_settle_walk_runs_as_written_on_the_demo_data(
    scratch_database_url: str, tmp_path: Path
) -> None:
    await seed_demo(scratch_database_url, tmp_path)

    walked = run_script(
        bash_blocks()[(SETTLE, 1)], database_url=scratch_database_url, home=tmp_path
    )

    assert walked.returncode == 0, walked.stdout + walked.stderr
    assert "Traceback" not in walked.stderr
    assert "Breakdown by reason" in (tmp_path / "last-month.html").read_text()
    payments = list(csv.DictReader(io.StringIO((tmp_path / "payments.csv").read_text())))
    assert [p["status"] for p in payments][:1] == ["UNPAID"]  # written before the payment
    statement = list(csv.DictReader(io.StringIO((tmp_path / "reel.csv").read_text())))
    assert {r["line"] for r in statement} >= {"obligation", "net position", "payment"}
    assert "wire 2026-12-03/118" in (tmp_path / "last-month.beancount").read_text()


async def test_the_readme_calls_run_as_written_with_the_demo_credentials(
    scratch_database_url: str, tmp_path: Path
) -> None:
    demo = await seed_demo(scratch_database_url, tmp_path)
    partner = demo.credentials[0]
    blocks = bash_blocks()
    script = "\n".join(blocks[(CALL_IT, place)] for place in (1, 2, 3))
    # What the reader pastes from the demo output in place of the placeholders:
    filled = {"CLIENT_ID": partner["client_id"], "CLIENT_SECRET": partner["client_secret"]}
    for name, value in filled.items():
        script, count = re.subn(rf"^{name}=\S+", f"{name}='{value}'", script, flags=re.MULTILINE)
        assert count == 1, f"the README lost its {name} placeholder"

    async with serving(scratch_database_url, tmp_path) as server:
        walked = run_script(
            script.replace("http://127.0.0.1:8000", server.url),
            database_url=scratch_database_url,
            home=tmp_path,
        )

    assert walked.returncode == 0, walked.stdout + walked.stderr
    earned, bought, exchanged = json_documents(walked.stdout)
    assert "errors" not in earned, earned
    assert earned["data"]["earnPoints"]["userErrors"] == []
    assert int(earned["data"]["earnPoints"]["transaction"]["points"]) == 100
    assert "errors" not in bought, bought
    assert bought["data"]["recordPurchase"]["userErrors"] == []
    assert int(bought["data"]["recordPurchase"]["purchase"]["points"]) > 0
    assert exchanged["token_type"] == "Bearer"
    assert exchanged["access_token"]


async def test_the_readme_command_examples_run_as_written_on_the_demo_data(
    scratch_database_url: str, tmp_path: Path
) -> None:
    await seed_demo(scratch_database_url, tmp_path)

    walked = run_script(
        bash_blocks()[(COMMAND, 1)], database_url=scratch_database_url, home=tmp_path
    )

    assert walked.returncode == 0, walked.stdout + walked.stderr
    assert "Traceback" not in walked.stderr
    assert "Corner Books" in walked.stdout
    assert "Platinum" in walked.stdout
    assert re.search(r"^member \d+ \(known since ", walked.stdout, flags=re.MULTILINE)
    assert "member.looked_up" in walked.stdout  # the lookup is in the audit log at once
