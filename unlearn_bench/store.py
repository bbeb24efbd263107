"""The run directory is the source of truth: config.yaml, split.json, env.json, predictions.npz and,
written last and atomically, metrics.json. Tables are rebuilt from run directories."""

from __future__ import annotations

import json
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from unlearn_bench.cache import atomic_write_text

PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "omegaconf", "numpy", "scikit-learn",
            "pandas", "zennit", "wandb", "unlearn-bench")


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True,
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
    """metrics.json of a finished run, or None."""
    p = Path(run_dir) / "metrics.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, OSError):
        return None


def load_results(root: str | Path) -> pd.DataFrame:
    """One row per run directory under ``root`` (any depth) holding a metrics.json."""
    rows = []
    for p in sorted(Path(root).rglob("metrics.json")):
        m = read_complete(p.parent)
        if m is not None:
            rows.append({**m, "run_dir": str(p.parent)})
    return pd.DataFrame(rows)
