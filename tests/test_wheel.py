"""A non-editable install works: the wheel carries the configuration tree (conf/ as unlearn_bench/conf),
the baselines and the launchers, and one digits job runs from it with the source tree out of reach."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "conf", "unlearn_bench", "baselines", "hydra_plugins")


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_the_wheel_lists_every_package():
    """pyproject.toml lists the packages by hand (conf/ needs a mapping a find directive cannot make):
    every folder holding a module is listed, and nothing else but the mapped conf."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(f.parent.relative_to(ROOT).parts)
             for top in ("unlearn_bench", "baselines", "hydra_plugins") for f in (ROOT / top).rglob("*.py")}
    # the hydra_plugins namespace is listed too: without it an editable install maps it to no folder and
    # Hydra's plugin scan misses the project's launchers
    assert listed - {"unlearn_bench.conf", "hydra_plugins"} == found, "fix the packages list: pyproject.toml"
    assert "hydra_plugins" in listed


# What Hydra does on every start: scan the hydra_plugins namespace for launchers and sweepers
SCAN = ("import pkgutil, hydra_plugins; "
        "print(sorted(m.name for m in pkgutil.iter_modules(hydra_plugins.__path__)))")


def test_hydra_finds_the_launchers_outside_the_checkout(tmp_path):
    """Run from a folder that is not the checkout, so only the installation (editable here, the wheel in the
    test below) can provide them."""
    out = subprocess.run([sys.executable, "-c", SCAN], cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert "unlearn_bench_launchers" in out.stdout, out.stdout + out.stderr


def test_an_installed_wheel_runs_a_digits_job(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:  # a copy, so that building writes nothing into the checkout
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp_path / "dist", src], cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("unlearn_bench-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = [str(f.relative_to(ROOT)) for f in sorted((ROOT / "conf").rglob("*.yaml"))
               if f"unlearn_bench/{f.relative_to(ROOT).as_posix()}" not in shipped]
    assert not missing, f"the wheel lacks {missing[:5]}"

    # a bare environment that sees this interpreter's dependencies through a .pth line: a path listed
    # there is not a site folder, so the editable install's finder in it never runs
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(_run([python, "-c", ask]).stdout.strip())
    deps = {sysconfig.get_path("purelib"), *site.getsitepackages()}
    (purelib / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", HYDRA_FULL_ERROR="1")
    where = json.loads(_run([python, "-c", "import json, baselines, unlearn_bench, "
                             "hydra_plugins.unlearn_bench_launchers as l; from unlearn_bench.config import "
                             "CONFIG_DIR; print(json.dumps([unlearn_bench.__file__, baselines.__file__, "
                             "l.__file__, CONFIG_DIR]))"], cwd=tmp_path, env=env).stdout)
    for path in where:
        assert Path(path).is_relative_to(purelib), f"{path} is not the installed copy"
    assert "unlearn_bench_launchers" in _run([python, "-c", SCAN], cwd=tmp_path, env=env).stdout
    _run([python, "-m", "unlearn_bench.data.check", "digits"], cwd=tmp_path, env=env)
    runs = tmp_path / "runs"
    _run([venv / "bin" / "unlearn-bench", "data=digits", "model=mlp", "method=none", "progress=false",
          f"runs_dir={runs}", f"cache_dir={tmp_path / 'cache'}"], cwd=tmp_path, env=env)
    metrics = json.loads(next(runs.rglob("metrics.json")).read_text())
    assert metrics["status"] == "ok" and metrics["method"] == "none"
