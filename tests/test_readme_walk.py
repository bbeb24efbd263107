"""The README's "Compose a run" commands, run as a new user would (on digits, the ones the README lets run on
a CPU in seconds): each ends by naming what it wrote and the next command, and that next command works and
names its own outputs; `make lint` passes on the tree the README describes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def _section_commands(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)
    return [line.split("   #")[0].strip() for line in block.splitlines() if line.strip()]


def _digits(cmd: str) -> bool:
    """Commands on digits: named explicitly, or no data= at all (digits is the default)."""
    return "data=digits" in cmd or "data=" not in cmd


def _run(cmd: str, cwd: Path, env: dict) -> str:
    argv = shlex.split(cmd)
    argv[0] = str(BIN / Path(argv[0]).name)  # .venv/bin/<tool> of this checkout
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{cmd}\n{out[-3000:]}"
    return out


@pytest.mark.slow
def test_the_compose_a_run_commands_say_where_their_output_went(tmp_path):
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled"}
    commands = [c for c in _section_commands("Compose a run") if _digits(c)]
    assert len(commands) >= 2, commands  # the single digits run and the local sweep
    reports = set()
    for cmd in commands:
        out = _run(cmd, tmp_path, env)
        if " -m " in f" {cmd} ":
            assert re.search(r"^sweep finished: \d+ runs under \S+", out, re.M), out[-2000:]
        else:
            [metrics] = re.findall(r"^run finished: (\S+metrics\.json)$", out, re.M)
            assert (tmp_path / metrics).is_file()
        nxt = re.findall(r"^next: (unlearn-bench-report \S+)$", out, re.M)
        assert nxt, out[-2000:]
        reports.update(nxt)
    for cmd in reports:
        out = _run(f".venv/bin/{cmd}", tmp_path, env)
        written = re.findall(r"^wrote (\S+)", out, re.M)
        assert any(w.endswith("results.md") for w in written), out[-2000:]
        assert all((tmp_path / w).exists() for w in written), written


@pytest.mark.slow
def test_make_lint_passes():
    p = subprocess.run(["make", "lint"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
