"""The README's quickstart, run as written against a real `plx server` (local runtime).

The shell block under "## Quickstart" is extracted and run by bash with `set -e`; each command
whose output the README shows (`# → ...` lines) is checked against what it printed, so neither the
commands nor the shown responses can rot.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_script() -> str:
    text = README.read_text()
    section = text.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's quickstart has no sh block"
    return "\n".join(blocks)


def shown_responses(script: str) -> list[str]:
    """The `# → ...` lines, in order (the part before an ellipsis or two spaces of comment)."""
    shown = []
    for line in script.splitlines():
        if line.startswith("# → "):
            shown.append(re.split(r"\.\.\.|  ", line[len("# → "):], maxsplit=1)[0].strip())
    return shown


def test_the_readme_quickstart_runs_as_written(server, tmp_path: Path) -> None:
    srv = server()
    # The README's admin password is the one of its `make run` line; the fixture's differs.
    script = quickstart_script().replace('"password": "change-me"', f'"password": "{ADMIN[1]}"')
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=work,
        env={**srv.env, "PLX": srv.url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    out = run.stdout
    # Every response the README shows appears in what the commands printed, in order.
    position = 0
    for shown in shown_responses(script.replace("http://127.0.0.1:8000", srv.url)):
        found = out.find(shown, position)
        assert found >= 0, f"README shows {shown!r}; the commands printed:\n{out}"
        position = found + len(shown)
    assert "('running', 2," in out or "('succeeded', " in out
    assert out.rstrip().splitlines()[-3:-1] == ["['stopped', 'succeeded']", "stopped"]
    dashboard = f"Open {srv.url}/projects/admin/quickstart/groups/1 in a browser"
    assert out.rstrip().splitlines()[-1].startswith(dashboard)
