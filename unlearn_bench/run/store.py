"""The run directory is the source of truth: config.yaml, split.json, env.json, predictions.npz and,
written last and atomically, metrics.json. Tables are rebuilt from run directories."""

from __future__ import annotations

import json
import logging
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from unlearn_bench.run.cache import atomic_write_text

log = logging.getLogger("unlearn_bench")
PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "omegaconf", "numpy", "scikit-learn",
            "pandas", "zennit", "wandb", "unlearn-bench")


# the checkout this package runs from; an installed wheel has none, and the git repository that may hold
# its environment (a project's .venv) is not the harness's version
CHECKOUT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    if not (CHECKOUT / ".git").exists():
        return None
    try:
        return subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def env_info(device: str) -> dict:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
        or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps({k: _clean(v) for k, v in obj.items()}, indent=1, default=str))


def read_complete(run_dir: Path) -> dict | None:
    """metrics.json of a finished run, or None (also when it is not a JSON object)."""
    p = Path(run_dir) / "metrics.json"
    if not p.exists():
        return None
    try:
        m = json.loads(p.read_text())
    except (json.JSONDecodeError, OSError, UnicodeDecodeError):
        return None
    return m if isinstance(m, dict) else None


# every run's metrics.json names these; the report groups and pairs runs by them
REQUIRED = {"status": str, "method": str, "data": str, "model": str, "forget": str, "seed": int}


def damage(p: Path) -> str | None:
    """Why ``p`` (a metrics.json) cannot be a row of the report, or None when it can."""
    try:
        m = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as e:
        return f"unreadable ({e.__class__.__name__})"
    except json.JSONDecodeError as e:
        return f"not JSON ({e.msg} at line {e.lineno})"
    if not isinstance(m, dict):
        return f"a JSON {type(m).__name__}, not an object"
    for k, t in REQUIRED.items():
        if k not in m:
            return f"no {k!r} key"
        if not isinstance(m[k], t) or isinstance(m[k], bool):
            return f"{k}={m[k]!r} is not a {t.__name__}"
    for k, v in m.items():
        # metrics are "family/name"; the rest is bookkeeping
        if "/" not in k or v is None or isinstance(v, bool):
            continue
        if not isinstance(v, (int, float)):
            return f"{k}={v!r} is not a number"
        if not math.isfinite(v):
            return f"{k}={v} (the harness writes null for a value it could not compute)"
    return None


def forget_sizes(run_dir: Path, forget: str) -> dict:
    """``examples/forget_train`` and ``examples/forget_test``: how many examples the run's forget accuracies
    average, from its per_class.csv (the classes of ``forget``, "0-1" style); {} when it cannot be read."""
    import csv
    classes = set(str(forget).split("-"))
    try:
        with open(Path(run_dir) / "per_class.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("class") in classes]
        if not rows:
            return {}
        return {"examples/forget_train": sum(int(r["n_train"]) for r in rows),
                "examples/forget_test": sum(int(r["n_test"]) for r in rows)}
    except (OSError, KeyError, ValueError, csv.Error):
        return {}


def load_results(root: str | Path) -> pd.DataFrame:
    """One row per run directory under ``root`` (any depth) holding a metrics.json, plus ``forget_sizes``.
    A damaged one (not a JSON object, a key the report needs missing, a value that is not a number) is
    skipped with a warning naming the file; ``df.attrs`` holds ``found`` (metrics.json files), ``loaded``
    (rows) and ``skipped`` ([(file, why)]), and one warning line states found against loaded."""
    rows, skipped = [], []
    found = sorted(Path(root).rglob("metrics.json"))
    for p in found:
        why = damage(p)
        if why is not None:
            skipped.append((str(p), why))
            log.warning("skipping %s: %s; the rest of the runs are reported", p, why)
            continue
        m = json.loads(p.read_text())
        rows.append({**m, **forget_sizes(p.parent, m["forget"]), "run_dir": str(p.parent)})
    if skipped:
        log.warning("%d of %d metrics.json under %s reported; %d skipped (named above)", len(rows),
                    len(found), root, len(skipped))
    df = pd.DataFrame(rows)
    df.attrs.update(found=len(found), loaded=len(rows), skipped=skipped)
    return df
