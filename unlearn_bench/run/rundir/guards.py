"""Guards around a run directory: it stays inside ``runs_dir``, one process writes it at a time, and a
finished run of another configuration in it is replaced only when ``overwrite=true`` says so (and then
kept aside as ``<file>.replaced-<time>``, which ``load_results`` does not read)."""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from unlearn_bench.errors import ConfigError, RunDirError
from unlearn_bench.run.locks import LockBusy, OwnedLock
from unlearn_bench.run.rundir.names import LOCK, RESULT_FILES

log = logging.getLogger("unlearn_bench")
VOLATILE = ("cache_dir", "logger", "progress", "runs_dir", "overwrite")  # not part of what a run computes


def inside(root: str | Path, path: str | Path) -> bool:
    """Whether ``path`` lies strictly below ``root`` once ``..`` and ``.`` are resolved (lexically: a symlink
    the user made under ``runs_dir`` is theirs to point anywhere)."""
    r = os.path.normpath(os.path.abspath(os.path.expanduser(str(root))))
    p = os.path.normpath(os.path.abspath(os.path.join(r, os.path.expanduser(str(path)))))
    return p != r and os.path.commonpath([r, p]) == r


def check_name(runs_dir, name) -> None:
    """``ConfigError`` unless ``runs_dir/name`` is a folder strictly inside ``runs_dir``."""
    if not inside(runs_dir, str(name)):
        raise ConfigError(f"name={name} would put runs outside runs_dir={runs_dir}; fix: use a plain name "
                          f"such as name=my_experiment (sub/folders are fine, '..' and absolute paths are "
                          f"not)")


def take_overwrite(cfg):
    """(cfg without ``overwrite``, its value): where results go and whether they may replace others is not
    part of the run's configuration, its hash or its setup."""
    value = cfg.get("overwrite", False)
    if not isinstance(value, bool):
        raise ConfigError(f"overwrite={value!r} is not true or false; fix: set overwrite=true or "
                          f"overwrite=false")
    if "overwrite" not in cfg:
        return cfg, value
    import copy

    from omegaconf import open_dict, read_write
    cfg = copy.deepcopy(cfg)
    with read_write(cfg), open_dict(cfg):
        del cfg["overwrite"]
    return cfg, value


@contextmanager
def run_lock(run_dir: Path):
    """Held while a run writes ``run_dir``; a second writer is refused, not interleaved, and told who holds
    it. An OS lock that goes with the process, with an owner record whose heartbeat says the run is in
    progress (``locks.OwnedLock``; a launcher reads it to leave a running run alone)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = OwnedLock(run_dir / LOCK, f"run {run_dir}")
    try:
        lock.acquire(blocking=False)
    except LockBusy as e:
        raise RunDirError(f"another process is writing {run_dir} ({e}, holds {LOCK}); fix: wait for it to "
                          f"finish, or give this command its own name=...") from None
    try:
        yield
    finally:
        lock.release()


def flatten(node, prefix: str = "") -> dict:
    """A nested config (plain containers) as ``{"a.b.c": value}``; a leaf under ``prefix`` is keyed by it."""
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node} if prefix else {}
    out = {}
    for k, v in node.items():
        out.update(flatten(v, f"{prefix}{k}."))
    return out


def differing_keys(run_dir: Path, plain: dict) -> list[str] | None:
    """Keys whose value differs between the run in ``run_dir`` (its config.yaml) and ``plain``; keys present
    on one side only (added by a newer version) do not count. None when config.yaml cannot be read."""
    try:
        old = flatten(OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")))
    except Exception:  # noqa: BLE001 -- missing or damaged: the differences are unknown
        return None
    new = flatten(plain)
    skip = lambda k: k.split(".", 1)[0] in VOLATILE  # noqa: E731
    return [f"{k}: {old[k]} there, {new[k]} here" for k in sorted(set(old) & set(new))
            if not skip(k) and old[k] != new[k]]


def set_aside(run_dir: Path) -> str:
    """Rename a finished run's files to ``<file>.replaced-<time>``; returns the suffix."""
    suffix = f".replaced-{time.strftime('%Y%m%dT%H%M%S')}"
    for name in RESULT_FILES:
        p = run_dir / name
        if p.exists():
            os.replace(p, p.with_name(p.name + suffix))
    return suffix


def claim(run_dir: Path, done: dict, plain: dict, overwrite: bool) -> None:
    """``run_dir`` holds ``done``, a finished run whose config_hash is not this run's: refuse, or set it
    aside. The same configuration computed by an older version (or from data files changed since) is
    recomputed, as a resumed sweep must; the old result is kept aside as well."""
    diff = differing_keys(run_dir, plain)
    if diff == [] or overwrite:
        suffix = set_aside(run_dir)
        why = "replacing it (overwrite=true)" if diff else \
            "its configuration is this one, computed by an older version or from data files changed since"
        log.warning("%s held a finished run: %s; the old result is kept as metrics.json%s", run_dir, why,
                    suffix)
        return
    what = "config.yaml is missing, so the differences are unknown" if diff is None else \
        "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
    raise RunDirError(f"{run_dir} holds a finished run of another configuration ({what}); fix: give this run "
                      f"its own name=..., or set overwrite=true to replace it (the old result is kept as "
                      f"metrics.json.replaced-<time>)")
