"""The README's settlement walk runs as written against the demo coalition's data."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.test_demo import seed_demo
from tests.conftest import TEST_SECRET_KEY

README = Path(__file__).resolve().parents[2] / "README.md"


def settle_walk() -> str:
    """The shell block under the README's "Settle a period" heading."""
    section = README.read_text().split("## Settle a period (the finance team)", 1)[1]
    found = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert found is not None, "the README lost its settle example"
    return found.group(1)


async def test_the_readme_settle_walk_runs_as_written_on_the_demo_data(
    scratch_database_url: str, tmp_path: Path
) -> None:
    await seed_demo(scratch_database_url, tmp_path)
    script = settle_walk()
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database_url,
        "EXCHANGE_HOME": str(tmp_path),
        "EXCHANGE_SECRET_KEY": TEST_SECRET_KEY,
        # `exchange` and `bean-check` as this environment installed them
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    walked = subprocess.run(  # noqa: S603, ASYNC221 (the README's own commands, one local run)
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607 (bash from PATH)
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert walked.returncode == 0, walked.stdout + walked.stderr
    assert "Traceback" not in walked.stderr
    assert "Breakdown by reason" in (tmp_path / "last-month.html").read_text()
    payments = list(csv.DictReader(io.StringIO((tmp_path / "payments.csv").read_text())))
    assert [p["status"] for p in payments][:1] == ["UNPAID"]  # written before the payment
    statement = list(csv.DictReader(io.StringIO((tmp_path / "reel.csv").read_text())))
    assert {r["line"] for r in statement} >= {"obligation", "net position", "payment"}
    assert "wire 2026-12-03/118" in (tmp_path / "last-month.beancount").read_text()
