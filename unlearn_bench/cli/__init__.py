"""``unlearn-bench``: the Hydra entry point around ``pipeline.run``.

Before Hydra starts, ``preflight`` checks the command line (one ``error: ...`` line, exit 2, for a line
that would not compose); a multirun then has every job validated (``sweep_check``) before the first one
starts. Each job returns ``cfg.optimized_metric`` of its metrics.json to the sweeper (``objective``).

When it ends, a single run prints its metrics.json and the report command for its experiment folder; a
multirun prints its sweep folder, how many runs finished, were skipped as finished before, or failed (each
failure named), and the report command (``rundir.run_lines`` / ``sweep_lines``, through ``closing``). Runs
left in the default ``name`` folder (``runs/adhoc``) keep their place there, so the same command finds and
skips a finished run; when that folder also holds runs of other experiments, which its report would show
together, the closing lines say so and how to keep them apart.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

from unlearn_bench.cli.closing import JOBS, adhoc, interrupted_line, recorded_launches, sweep_end
from unlearn_bench.cli.objective import objective_value
from unlearn_bench.cli.preflight import preflight
from unlearn_bench.config import (  # noqa: F401  (re-exported: the CLI's resolvers and config folder)
    CONFIG_DIR,
    drawn_params,
    first_values,
    method_seed_tag,
)
from unlearn_bench.errors import ConfigError, Interrupted, UnlearnBenchError, one_line

log = logging.getLogger("unlearn_bench")

# Lightning's SLURM detection warns on every fit wherever an `srun` binary is on PATH, to catch multi-GPU jobs
# started without srun. A run here trains on one device, and under hydra/launcher=slurm submitit starts each
# task with srun itself, so the hint is always noise. Set here, at import: launcher workers import this module
# to find the task function, so the filter holds in every process that runs a job.
warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")


class _OptunaStudyLine(logging.Filter):
    """The Optuna sweeper announces its study in four lines (name, storage, sampler, directions): one here."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        for key in ("Study name", "Storage", "Sampler"):
            if msg.startswith(f"{key}: "):
                self.seen[key] = msg[len(key) + 2:]
                return False
        if msg.startswith("Directions: "):
            record.msg, record.args = (f"optuna study {self.seen.get('Study name', '')}: sampler "
                                       f"{self.seen.get('Sampler')}, storage {self.seen.get('Storage')}, "
                                       f"{msg[0].lower()}{msg[1:]}"), ()
        return True


# Optuna's storage layer imports alembic, which logs a line per plugin it sets up (7 lines before any trial)
logging.getLogger("alembic").setLevel(logging.WARNING)
logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").addFilter(_OptunaStudyLine())


def task(cfg: DictConfig, run_dir: Path | None = None) -> float | None:
    """One job: the run (``pipeline.run``, which validates the whole config before it writes or trains
    anything), its outcome line(s), and the value its sweeper gets (``objective.objective_value``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from unlearn_bench.run.pipeline import _hydra_run_dir, run
    from unlearn_bench.run.rundir import SHOWN, experiment_dir, outcome, run_lines, shown
    run_dir = JOBS["current"] = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    started = time.time()
    try:
        result = run(cfg, run_dir)
    except UnlearnBenchError as e:
        JOBS["outcomes"][str(run_dir)] = ("failed", one_line(e, 1000))
        print(f"error: {one_line(e, 1000)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C where interrupts.install did not run (e.g. a submitit job)
        print(f"interrupted by SIGINT: run {JOBS['current']} left unfinished; rerun the same command to "
              f"resume", file=sys.stderr)
        sys.exit(130)
    JOBS["finished"] += 1
    JOBS["current"] = None
    kind, reason = JOBS["outcomes"][str(run_dir)] = outcome(run_dir, started)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        numbers = ", ".join(f"{k} {result[k]:.4f}" for k in SHOWN if isinstance(result.get(k), float))
        log.info("%s %s: %s", kind, shown(run_dir), reason or numbers)
    else:
        folder = experiment_dir(cfg.get("runs_dir"), cfg.get("name"), run_dir)
        print("\n".join(run_lines(run_dir, kind, reason, result, folder, adhoc(cfg))))
    return objective_value(cfg, result)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> float | None:
    return task(cfg)


def main() -> None:
    from hydra._internal.utils import get_args_parser  # the parser @hydra.main itself uses
    args, _ = get_args_parser().parse_known_args()
    special = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or \
        args.config_path or args.config_dir or args.experimental_rerun
    from unlearn_bench.run import interrupts
    interrupts.install()  # SIGTERM / SIGINT -> Interrupted, reported below in one line
    try:
        if not special:
            try:
                preflight(list(args.overrides), args.config_name or "config", bool(args.multirun))
                if args.multirun:  # every job validated before the first one starts
                    from unlearn_bench.cli.sweep_check import check_sweep
                    check_sweep(list(args.overrides), args.config_name or "config")
            except ConfigError as e:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(2)
        if not args.multirun or special:
            _app()
            return
        started = time.time()
        with recorded_launches():
            try:
                _app()
            except SystemExit as e:  # a job's error (its line is above) or Hydra's ended the sweep
                if e.code not in (None, 0):
                    sweep_end(started, stopped=True)
                raise
        sweep_end(started, stopped=False)
    except Interrupted as e:
        total = None
        if args.multirun and not special:  # counted only when a stopped sweep has to say what it left
            from hydra.core.global_hydra import GlobalHydra

            from unlearn_bench.cli.sweep_check import count_jobs
            GlobalHydra.instance().clear()
            total = count_jobs(list(args.overrides), args.config_name or "config")
        print(interrupted_line(e, bool(args.multirun), total), file=sys.stderr)
        sys.exit(interrupts.exit_status(e))
