"""What a command says when it ends: a run's main numbers or a sweep's tally (each failure named), a note
when the experiment's folder also holds runs of other experiments, and the report command to run next."""

from __future__ import annotations

import os
import shlex
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from unlearn_bench.run.rundir.attempts import outcome, read_json
from unlearn_bench.run.rundir.guards import inside
from unlearn_bench.run.rundir.names import FAILED, METRICS


def other_experiments(folder: Path, own: list[Path]) -> tuple[int, int]:
    """Finished runs under ``folder`` that are not among ``own`` and not comparable with them: (runs of a
    setup none of ``own`` has, runs of one of ``own``'s methods with other method settings). A report of
    ``folder`` shows them beside ``own``."""
    own_dirs = {Path(d).resolve() for d in own}
    series: dict[tuple, Path] = {}
    for d in own_dirs:
        m = read_json(d / METRICS)
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
    for p in Path(folder).rglob(METRICS):
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
    metrics = shown(Path(run_dir) / METRICS)
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
