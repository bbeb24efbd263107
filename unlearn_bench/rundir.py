"""Guards around a run directory: it stays inside ``runs_dir``, one process writes it at a time, and a
finished run of another configuration in it is replaced only when ``overwrite=true`` says so (and then
kept aside as ``<file>.replaced-<time>``, which ``load_results`` does not read)."""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from omegaconf import OmegaConf

from unlearn_bench.errors import ConfigError, RunDirError

log = logging.getLogger("unlearn_bench")
LOCK = ".run.lock"
# what a finished run leaves that the next one rewrites; kept aside together when it is replaced
RESULT_FILES = ("metrics.json", "predictions.npz", "config.yaml", "split.json", "env.json", "per_class.csv",
                "roc.csv")
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
        raise ConfigError(f"name={name} would put runs outside runs_dir={runs_dir}; fix: use a plain name such as "
                          f"name=my_experiment (sub/folders are fine, '..' and absolute paths are not)")


def take_overwrite(cfg):
    """(cfg without ``overwrite``, its value): where results go and whether they may replace others is not
    part of the run's configuration, its hash or its setup."""
    value = cfg.get("overwrite", False)
    if not isinstance(value, bool):
        raise ConfigError(f"overwrite={value!r} is not true or false; fix: set overwrite=true or overwrite=false")
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
    """Held while a run writes ``run_dir``; a second writer is refused, not interleaved. An OS lock: it goes
    with the process, so a killed run leaves nothing stale."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirError(f"another process is writing {run_dir} (it holds {LOCK}); fix: wait for it to finish, "
                          f"or give this command its own name=...") from None
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
    """Keys whose value differs between the run in ``run_dir`` (its config.yaml) and ``plain``; keys present on
    one side only (added by a newer version) do not count. None when config.yaml cannot be read."""
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
        log.warning("%s held a finished run: %s; the old result is kept as metrics.json%s", run_dir, why, suffix)
        return
    what = "config.yaml is missing, so the differences are unknown" if diff is None else \
        "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
    raise RunDirError(f"{run_dir} holds a finished run of another configuration ({what}); fix: give this run "
                      f"its own name=..., or set overwrite=true to replace it (the old result is kept as "
                      f"metrics.json.replaced-<time>)")
