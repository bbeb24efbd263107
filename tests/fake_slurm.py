"""Fake Slurm tools for the launcher tests: executables on PATH that print what Slurm 22.05 prints."""

from pathlib import Path

import pytest

from hydra_plugins.unlearn_bench_launchers import slurm_request

# `sinfo --all --noheader --format=%P|%a|%l|%c|%m|%G|%D` on a cluster with CPU and GPU partitions: one
# line per partition and node configuration; cpu mixes nodes with more CPUs and nodes with more memory
SINFO = """debug*|up|1:00:00|16|64000|(null)|2
cpu|up|2-00:00:00|64|512000|(null)|8
cpu|up|2-00:00:00|128|256000|(null)|40
gpu|up|1-00:00:00|64|512000|gpu:a100:4(S:0-1)|16
gpu|up|1-00:00:00|32|192000|gpu:v100:8(S:0-1),shard:8|4
maint|down|30:00|16|64000|(null)|2
"""


def tool(bindir: Path, name: str, stdout: str = "", stderr: str = "", status: int = 0) -> Path:
    """An executable ``name`` that prints ``stdout`` / ``stderr``, exits ``status`` and logs its arguments."""
    bindir.mkdir(exist_ok=True)
    (bindir / f"{name}.out").write_text(stdout)
    (bindir / f"{name}.err").write_text(stderr)
    exe = bindir / name
    exe.write_text(f'#!/bin/sh\necho "$@" >> "{bindir}/{name}.calls"\ncat "{bindir}/{name}.out"\n'
                   f'cat "{bindir}/{name}.err" >&2\nexit {status}\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def slurm_bin(tmp_path, monkeypatch):
    """A folder of fake Slurm tools, alone on PATH but for the shell's own tools; no request checked yet."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("SBATCH_PARTITION", raising=False)
    monkeypatch.setattr(slurm_request, "_checked", set())
    if Path("/usr/bin/sinfo").exists() or Path("/bin/sinfo").exists():
        tool(bindir, "sinfo", stderr="sinfo: error: no controller here", status=1)  # shadow the real one
    return bindir
