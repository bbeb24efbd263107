"""Guards around a run directory: it stays inside ``runs_dir``, one process writes it at a time, and a
finished run of another configuration in it is replaced only when ``overwrite=true`` says so (and then
kept aside as ``<file>.replaced-<time>``, which ``load_results`` does not read). A run that ends without a
metrics.json leaves ``failed.json`` saying why; ``outcome`` reads a folder back."""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from unlearn_bench.errors import ConfigError, RunDirError
from unlearn_bench.run.locks import LockBusy, OwnedLock, live_owner

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
    """Held while a run writes ``run_dir``; a second writer is refused, not interleaved, and told who holds it.
    An OS lock that goes with the process, with an owner record whose heartbeat says the run is in progress
    (``locks.OwnedLock``; a launcher reads it to leave a running run alone)."""
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


# -- what a run folder says about its last attempt ----------------------------------------------------------
# failed.json: why the folder's last attempt ended without a metrics.json. Written when an attempt starts
# (status "unfinished": a run killed without warning, by SIGKILL, the out-of-memory killer or a lost node,
# can write nothing later), replaced by "failed" or "interrupted" when the attempt ends by an error or a
# signal, and removed whenever metrics.json is written (a diverged run's metrics.json, status "failed", is
# its record). It is never written beside a finished metrics.json: that folder belongs to its finished run.
FAILED = "failed.json"
RESUME = "rerun the same command to resume"


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None (missing, unreadable, not JSON, not an object)."""
    try:
        m = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def _finished_here(run_dir: Path) -> bool:
    return read_json(run_dir / "metrics.json") is not None


def failure(e: BaseException | None, config_hash: str | None = None) -> dict:
    """failed.json's content for ``e`` (None: an attempt that has just started)."""
    import signal

    from unlearn_bench.errors import Interrupted, UnlearnBenchError, one_line
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record = {"status": "failed", "reason": "", "error": None, "signal": None, "time": now,
              "pid": os.getpid(), "host": socket.gethostname(), "config_hash": config_hash}
    if e is None:
        record.update(status="unfinished", reason=f"started at {now} and has not finished; if process "
                      f"{record['pid']} on {record['host']} is gone, it was killed without warning "
                      f"(SIGKILL, out of memory, a lost node); fix: {RESUME}")
        return record
    record["error"] = type(e).__name__
    if isinstance(e, (Interrupted, KeyboardInterrupt)):
        name = e.name if isinstance(e, Interrupted) else signal.SIGINT.name
        record.update(status="interrupted", signal=name, reason=f"interrupted by {name}; fix: {RESUME}")
    elif isinstance(e, SystemExit):
        record.update(status="interrupted", reason=f"the process was told to exit (status {e.code}) before "
                                                    f"the run finished; fix: {RESUME}")
    elif isinstance(e, UnlearnBenchError):
        record["reason"] = one_line(e, 1000)
    else:
        record["reason"] = f"{type(e).__name__}: {one_line(e, 1000)}"
    return record


def record_failure(run_dir: Path, e: BaseException | None, config_hash: str | None = None,
                   locked: bool = True) -> None:
    """Write failed.json for ``e`` into ``run_dir``, unless the folder does not exist (nothing of this run
    was written), holds a finished run, or, when this run does not hold its lock (``locked`` false), another
    process is writing it (its record is its own). Never raises: the error being recorded is what matters."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or _finished_here(run_dir) or (not locked and _held_elsewhere(run_dir)):
        return
    try:
        from unlearn_bench.run.cache import atomic_write_text
        atomic_write_text(run_dir / FAILED, json.dumps(failure(e, config_hash), indent=1))
    except Exception as err:  # noqa: BLE001 -- e.g. the full disk that failed the run
        log.warning("could not write %s (%s)", run_dir / FAILED, err)


def clear_failure(run_dir: Path) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


def mark_started(run_dir: Path, config_hash: str | None = None, locked: bool = False) -> None:
    """failed.json with status ``unfinished``, what a run killed without warning leaves (on
    ``record_failure``'s conditions)."""
    record_failure(run_dir, None, config_hash, locked)


def _held_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock (is writing the run there now), read from the lock's
    owner record: the lock itself is never taken here, so a run starting at this instant is not refused."""
    return live_owner(run_dir / LOCK, others_only=True) is not None


@contextmanager
def failures_recorded(run_dir: Path, config_hash: str | None = None, locked: bool = False):
    """Inside, an error or a signal that ends the run leaves failed.json saying why (on ``record_failure``'s
    conditions). A refusal to touch the folder (``RunDirError``: another writer holds it, or it holds another
    configuration's finished run) is not this folder's failure and is not recorded."""
    try:
        yield
    except RunDirError:
        raise
    except BaseException as e:
        record_failure(run_dir, e, config_hash, locked)
        raise


def outcome(run_dir: Path, since: float | None = None) -> tuple[str, str]:
    """How the last attempt at ``run_dir`` ended: ``finished``; ``skipped`` (metrics.json older than
    ``since``: it was finished before); ``failed`` (metrics.json with another status, or failed.json);
    ``interrupted`` / ``unfinished`` (failed.json); ``unfinished`` when the folder holds neither file. The
    second element is the reason, empty for a finished run."""
    run_dir = Path(run_dir)
    m = read_json(run_dir / "metrics.json")
    if m is not None:
        if m.get("status", "ok") != "ok":  # diverged: recorded, so a rerun skips it
            why = m.get("reason") or m.get("status")
            return "failed", f"{why} (in metrics.json; fix: delete the folder to retry)"
        try:
            old = since is not None and (run_dir / "metrics.json").stat().st_mtime < since
        except OSError:
            old = False
        return ("skipped" if old else "finished"), ""
    record = read_json(run_dir / FAILED)
    if record is not None:
        return str(record.get("status") or "failed"), str(record.get("reason") or "")
    return "unfinished", "the folder holds neither metrics.json nor failed.json"


def other_experiments(folder: Path, own: list[Path]) -> tuple[int, int]:
    """Finished runs under ``folder`` that are not among ``own`` and not comparable with them: (runs of a
    setup none of ``own`` has, runs of one of ``own``'s methods with other method settings). A report of
    ``folder`` shows them beside ``own``."""
    own_dirs = {Path(d).resolve() for d in own}
    series: dict[tuple, Path] = {}
    for d in own_dirs:
        m = read_json(d / "metrics.json")
        if m is not None:
            series.setdefault((m.get("setup"), m.get("method")), d)
    setups = {s for s, _ in series}
    method_cfg: dict[Path, object] = {}

    def settings(d: Path):
        if d not in method_cfg:
            try:
                method_cfg[d] = OmegaConf.to_container(OmegaConf.load(d / "config.yaml")).get("method")
            except Exception:  # noqa: BLE001 -- missing or damaged: unknown, so not counted as different
                method_cfg[d] = None
        return method_cfg[d]

    other_setup = other_settings = 0
    for p in Path(folder).rglob("metrics.json"):
        d = p.parent.resolve()
        m = read_json(p) if d not in own_dirs else None
        if m is None:
            continue
        key = (m.get("setup"), m.get("method"))
        if key[0] not in setups:
            other_setup += 1
        elif key in series and None not in (settings(d), settings(series[key])) and \
                settings(d) != settings(series[key]):
            other_settings += 1
    return other_setup, other_settings


# -- what a command says when it ends -----------------------------------------------------------------------
REPORT = "unlearn-bench-report"
SHOWN = ("acc/forget_train", "acc/forget_test", "acc/retain_test", "acc/test", "gap/avg_to_retrain")


def shown(path) -> str:
    """``path`` as a command line names it: relative to the working folder when inside it, quoted."""
    p = os.path.abspath(str(path))
    rel = os.path.relpath(p)
    return shlex.quote(p if rel.startswith("..") else rel)


def _n(k: int, what: str) -> str:
    return f"{k} {what}{'' if k == 1 else 's'}"


def experiment_dir(runs_dir, name, run_dir: Path) -> Path:
    """``runs_dir/name``, the folder to report, when ``run_dir`` lies inside it (``hydra.run.dir`` may put a
    run elsewhere), else ``run_dir`` itself."""
    if runs_dir is None or name is None or not inside(Path(str(runs_dir)) / str(name), run_dir):
        return Path(run_dir)
    return Path(str(runs_dir)) / str(name)


def mixed_note(folder: Path, own: list[Path]) -> str | None:
    """One line when ``folder`` holds runs of other experiments than ``own`` (``other_experiments``)."""
    setups, settings = other_experiments(folder, own)
    parts = [f"{_n(setups, 'run')} of another setup (data, model, recipe or protocol)"] if setups else []
    parts += [f"{_n(settings, 'run')} of the same method with other settings"] if settings else []
    if not parts:
        return None
    these = "this run" if len(own) == 1 else "these runs"
    return (f"note: {shown(folder)} also holds {' and '.join(parts)}, made by earlier commands; its report "
            f"shows them beside {these}; fix: give each experiment its own name=...")


def run_lines(run_dir: Path, kind: str, reason: str, result: dict, folder: Path, adhoc: bool) -> list[str]:
    """What a single run prints when it ends: its metrics.json, its main numbers, the command to run next."""
    metrics = shown(Path(run_dir) / "metrics.json")
    if kind == "failed":
        lines = [f"run failed: {reason}: {metrics}"]
    else:
        same = "already finished (same configuration), nothing recomputed"
        lines = [f"run {same if kind == 'skipped' else 'finished'}: {metrics}"]
        numbers = "  ".join(f"{k} {result[k]:.4f}" for k in SHOWN if isinstance(result.get(k), float))
        lines += [f"  {numbers}"] if numbers else []
    note = mixed_note(folder, [run_dir]) if adhoc else None
    lines += [note] if note else []
    if list(Path(run_dir).glob("wandb/offline-run-*")):
        lines.append(f"wandb: upload with: wandb sync {shown(run_dir)}/wandb/offline-run-*")
    lines.append(f"next: {REPORT} {shown(folder)}")
    return lines


def sweep_outcomes(returns: list, known: dict[str, tuple[str, str]],
                   since: float) -> dict[Path, tuple[str, str]]:
    """Every run folder of a sweep and how its run ended: ``known`` (folder -> outcome) for the jobs this
    process ran, else the folder's files (``outcome``) and the launcher's JobReturn (an exception that left
    no record). A JobReturn without a Hydra config (a dry run's job) ran nothing and is left out."""
    from hydra.core.utils import JobStatus

    from unlearn_bench.errors import one_line
    runs: dict[Path, tuple[str, str]] = {}
    for ret in returns:
        if getattr(ret, "hydra_cfg", None) is None:
            continue
        d = os.path.abspath(str(ret.hydra_cfg.hydra.runtime.output_dir))
        kind, reason = known.get(d) or outcome(Path(d), since)
        if ret.status == JobStatus.FAILED and kind in ("finished", "skipped", "unfinished"):
            kind, reason = "failed", one_line(ret._return_value, 1000)
        runs[Path(d)] = (kind, reason)
    for d, result in known.items():  # jobs of a launch that an error cut short
        runs.setdefault(Path(d), result)
    return runs


def sweep_lines(runs: dict[Path, tuple[str, str]], folder: Path, stopped: bool, adhoc: bool) -> list[str]:
    """What a multirun prints when it ends: where its runs went, how many finished, were skipped as finished
    before, or failed (each failure named, up to five), and the report command."""
    kinds = Counter(kind for kind, _ in runs.values())
    bad = [(d, kind, why) for d, (kind, why) in runs.items() if kind not in ("finished", "skipped")]
    lines = [f"sweep {'stopped' if stopped else 'finished'}: {_n(len(runs), 'run')} under {shown(folder)}: "
             f"{kinds['finished']} finished, {kinds['skipped']} skipped as already finished, "
             f"{len(bad)} failed"]
    for d, kind, why in bad[:5]:
        lines.append(f"  {kind}: {shown(d)}: {why}")
    if len(bad) > 5:
        lines.append(f"  ... and {len(bad) - 5} more; each folder's {FAILED} or metrics.json says why")
    note = mixed_note(folder, list(runs)) if adhoc else None
    lines += [note] if note else []
    if not stopped and any(list(Path(d).glob("wandb/offline-run-*")) for d in runs):
        lines.append(f"wandb: upload this sweep's offline runs with: wandb sync $(find {shown(folder)} "
                     f"-type d -name 'offline-run-*')")
    lines.append(f"next: {REPORT} {shown(folder)}" if not stopped else
                 "next: fix the error above, then rerun the same command (finished runs are skipped)")
    return lines
