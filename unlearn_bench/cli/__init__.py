"""``unlearn-bench``: the Hydra entry point around ``pipeline.run``.

Before Hydra starts, ``preflight`` composes the command line once with Hydra's compose API: an unknown
group option, a misspelled key or a malformed override then ends in one ``error: ...`` line (exit 2)
instead of Hydra's multi-line report. A multirun then has every job validated (``sweep_check``) before the
first one starts. Valid command lines go to Hydra unchanged.

When it ends, a single run prints its metrics.json and the report command for its experiment folder; a
multirun prints its sweep folder, how many runs finished, were skipped as finished before, or failed (each
failure named), and the report command (``rundir.run_lines`` / ``sweep_lines``). Runs left in the default
``name`` folder (``runs/adhoc``) keep their place there, so the same command finds and skips a finished run;
when that folder also holds runs of other experiments, which its report would show together, the closing
lines say so and how to keep them apart.
"""

from __future__ import annotations

import difflib
import logging
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

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


def _keys(node, prefix: str = "") -> list[str]:
    """Every dotted key of a composed config (interpolations left unresolved)."""
    out = []
    for k in node.keys() if OmegaConf.is_dict(node) else []:
        key = f"{prefix}{k}"
        out.append(key)
        child = node._get_node(k)
        if OmegaConf.is_dict(child):
            out += _keys(child, key + ".")
    return out


def preflight(args: list[str], config_name: str = "config", multirun: bool = False) -> None:
    """Raise ``ConfigError`` (one line) if Hydra could not compose ``args``; a valid line passes silently."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except OverrideParseException as e:
        raise ConfigError(f"cannot parse the override ({one_line(e)}); fix: write key=value, "
                          f"quote values with spaces or brackets") from e
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for o in overrides:
            options = loader.get_group_options(o.key_or_group) if not o.is_delete() else []
            if not options:
                continue
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
            bad = [v for v in values if str(v) not in options]  # null too: Hydra takes no null for a group
            if bad:
                raise ConfigError(f"{o.key_or_group}={'null' if bad[0] is None else bad[0]} is not an option of group {o.key_or_group}; "
                                  f"fix: use one of {', '.join(options)}")
        sweeps = [o.input_line for o in overrides if o.is_sweep_override()]
        if sweeps and not multirun:
            raise ConfigError(f"{sweeps[0]} is a sweep but this is a single run; fix: add -m to sweep, or "
                              f"write a list as key=[a,b]")
        line = first_values(overrides)
        try:
            cfg = compose(config_name, overrides=line, return_hydra_config=True)
        except (HydraException, ValueError) as e:  # Hydra raises a bare ValueError for some group values
            raise ConfigError(_explain(e, overrides, compose, config_name)) from e
    from omegaconf.errors import OmegaConfBaseException
    for key in ("runs_dir", "cache_dir"):  # Hydra makes the run folder before any check of ours would run
        try:
            path = str(cfg[key])
        except OmegaConfBaseException:  # e.g. ${hydra:runtime.cwd}: resolvable only inside the run
            continue
        writable_dir(path, key)
    from unlearn_bench.run.rundir import check_name, take_overwrite
    take_overwrite(cfg)  # overwrite=maybe: one line before Hydra starts
    if multirun and "hydra" in cfg:  # a Slurm request no partition can run: one line before any job is checked
        from hydra_plugins.unlearn_bench_launchers.slurm_request import check_launcher
        warning = check_launcher(cfg.hydra.launcher)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    names = [v for o in overrides if o.key_or_group == "name"
             for v in (o.sweep_string_iterator() if o.is_sweep_override() else [o.value()])]
    try:
        for name in names or [cfg.name]:  # every swept name, else the composed one (an experiment's)
            check_name(cfg.runs_dir, name)
    except OmegaConfBaseException:
        pass


def writable_dir(path: str, key: str) -> None:
    """``ConfigError`` unless ``path`` is, or can be made as, a folder this process may write to."""
    import os
    p = Path(path).expanduser().absolute()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    where = "UNLEARN_BENCH_CACHE or cache_dir" if key == "cache_dir" else key
    if not probe.is_dir():
        raise ConfigError(f"{key}={path} cannot be a folder: {probe} is a file; fix: point {where} at a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path} is not writable ({probe} is read-only for this user); fix: point "
                          f"{where} at a writable folder")


def _has_key(compose, config_name: str, choice: str, key: str) -> bool:
    try:
        return OmegaConf.select(compose(config_name, overrides=[choice]), key, default=None) is not None
    except Exception:  # noqa: BLE001 -- an option that does not compose has no keys
        return False


def _explain(e: Exception, overrides, compose, config_name: str) -> str:
    """One line for a composition error; a misspelled key gets the closest valid key."""
    text = str(e)
    for o in overrides:
        key = o.key_or_group
        if text.startswith(f"Could not override '{key}'"):
            group = key.split(".", 1)[0]
            swept = next((x for x in overrides if x.key_or_group == group and x.is_sweep_override()), None)
            options = list(swept.sweep_string_iterator()) if swept is not None else []
            if any(_has_key(compose, config_name, f"{group}={v}", key) for v in options[1:]):
                # e.g. -m method=none,finetune method.lr=0.1: finetune has lr, none has not
                return (f"{key} is not a setting of {group}={options[0]}, one of the swept {group}s; fix: sweep "
                        f"only {group}s that have {key.split('.', 1)[1]}, or run the others without it")
            groups = [x.input_line for x in overrides if "/" not in x.key_or_group and "." not in x.key_or_group
                      and not x.is_sweep_override() and x is not o]
            try:
                known = _keys(compose(config_name, overrides=groups, return_hydra_config=True))
            except Exception:
                known = _keys(compose(config_name, overrides=[], return_hydra_config=True))
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}=...? To add a new key write +{key}=..." if close else \
                f"to add a new key write +{key}=..."
            return f"unknown config key '{key}'; fix: {hint}"
        if text.startswith("Could not append to config") and f"'{key}'" in text:
            return f"+{key} adds a key that already exists; fix: write {key}=... to change it"
    return f"the command line does not compose ({one_line(text, 200)}); fix: correct that override"


# jobs of this process: how a stopped sweep says what it left (the basic launcher runs them here, in turn);
# "outcomes" (run folder -> (kind, reason)) and "returns" (every launcher's JobReturns) say how a sweep ended
_jobs: dict = {"finished": 0, "current": None, "outcomes": {}, "returns": [], "sweep": None}


def _adhoc(cfg) -> bool:
    """Whether the run goes to the default experiment folder (``name`` left as conf/config.yaml sets it):
    runs nobody chose to group, which is where a note on mixed experiments belongs."""
    try:
        return str(cfg.name) == str(OmegaConf.load(Path(CONFIG_DIR) / "config.yaml").get("name"))
    except Exception:  # noqa: BLE001 -- no note rather than no run
        return False


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from unlearn_bench.run.pipeline import _hydra_run_dir, run
    from unlearn_bench.run.rundir import SHOWN, experiment_dir, outcome, run_lines, shown
    run_dir = _jobs["current"] = _hydra_run_dir()
    started = time.time()
    try:
        result = run(cfg)  # validates the whole config before it writes or trains anything
    except UnlearnBenchError as e:
        _jobs["outcomes"][str(run_dir)] = ("failed", one_line(e, 1000))
        print(f"error: {one_line(e, 1000)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C where interrupts.install did not run (e.g. a submitit job)
        print(f"interrupted by SIGINT: run {_jobs['current']} left unfinished; rerun the same command to resume",
              file=sys.stderr)
        sys.exit(130)
    _jobs["finished"] += 1
    _jobs["current"] = None
    kind, reason = _jobs["outcomes"][str(run_dir)] = outcome(run_dir, started)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        numbers = ", ".join(f"{k} {result[k]:.4f}" for k in SHOWN if isinstance(result.get(k), float))
        log.info("%s %s: %s", kind, shown(run_dir), reason or numbers)
    else:
        folder = experiment_dir(cfg.get("runs_dir"), cfg.get("name"), run_dir)
        print("\n".join(run_lines(run_dir, kind, reason, result, folder, _adhoc(cfg))))
    return result.get("acc/forget_train")


class _RecordedLauncher:
    """A sweeper's launcher, whose ``launch`` also keeps the JobReturns for the sweep's closing lines. The
    sweeper holds this wrapper; the launcher itself (which submitit pickles into its jobs) is unchanged."""

    def __init__(self, launcher):
        self._launcher = launcher

    def __getattr__(self, name):
        return getattr(self._launcher, name)

    def launch(self, job_overrides, initial_job_idx):
        returns = self._launcher.launch(job_overrides, initial_job_idx)
        _jobs["returns"].extend(returns)
        return returns


@contextmanager
def _recorded_launches():
    """Inside, every launcher Hydra builds for a sweeper is a ``_RecordedLauncher``."""
    from hydra.core.plugins import Plugins
    real = Plugins.instantiate_launcher

    def instantiate_launcher(self, *args, **kwargs):
        launcher = real(self, *args, **kwargs)
        _jobs["sweep"] = kwargs.get("config", args[-1] if args else None)
        if "optuna" in sys.modules:  # a study's creation announces itself; the sweeper's own line says it all
            sys.modules["optuna"].logging.set_verbosity(logging.WARNING)
        return _RecordedLauncher(launcher)
    Plugins.instantiate_launcher = instantiate_launcher
    try:
        yield
    finally:
        Plugins.instantiate_launcher = real


def sweep_end(since: float, stopped: bool) -> None:
    """Print the sweep's closing lines (``rundir.sweep_lines``); nothing for a dry run or when no job ran."""
    import os

    from unlearn_bench.run.rundir import sweep_lines, sweep_outcomes
    runs, cfg = sweep_outcomes(_jobs["returns"], _jobs["outcomes"], since), _jobs["sweep"]
    if not runs or (cfg is not None and OmegaConf.select(cfg, "hydra.launcher.dry_run", default=False)):
        return
    try:
        folder = Path(str(cfg.hydra.sweep.dir))
    except Exception:  # noqa: BLE001 -- a sweep folder named by something only a job resolves
        folder = Path(os.path.commonpath([str(d) for d in runs]))
    print("\n".join(sweep_lines(runs, folder, stopped, cfg is not None and _adhoc(cfg))), flush=True)


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
        with _recorded_launches():
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


def interrupted_line(e: Interrupted, multirun: bool, total: int | None) -> str:
    """The one line a stopped run or sweep prints: what was left, and that the same command resumes it."""
    done, current = _jobs["finished"], _jobs["current"]
    fix = "rerun the same command to resume"
    if not multirun:
        if current is None:
            return f"{e}: the run had not started; {fix}"
        return f"{e}: run {current} left unfinished; {fix}"
    parts = [f"{done} of {total} jobs finished" if total else f"{done} jobs finished here"]
    if current is not None:
        parts.append(f"1 interrupted ({current})")
    if total:
        parts.append(f"{max(total - done - (current is not None), 0)} did not start")
    else:  # another launcher or sweeper: its jobs run elsewhere or are chosen as it goes
        parts.append("jobs of other processes or launchers may not have finished")
    return f"{e}: sweep left unfinished: {', '.join(parts)}; {fix} (finished runs are skipped)"


