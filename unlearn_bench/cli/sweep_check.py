"""Before a multirun starts, every job's configuration is validated as its run would validate it.

Without this, an invalid combination (a forget class one dataset lacks, a method that does not fit one of
the models) ends the sweep at its own job, after the jobs before it have trained. With it, the sweep ends in
one ``error: job i of n (...)`` line before any job runs. Jobs are listed as Hydra's basic sweeper lists
them (the experiment's ``hydra.sweeper.params`` and the command line's sweeps); other sweepers (Optuna)
choose their jobs as they go and are left to validate each run themselves.

Jobs that differ only in their seed share a setup: the setup is validated once (data, split, model,
method), each further seed only by the checks that need nothing built. At most ``MAX_SETUPS`` setups are
built; the rest are left to their runs. ``UNLEARN_BENCH_SWEEP_CHECK=0`` switches the check off.
"""

from __future__ import annotations

import os

from hydra.errors import HydraException

from unlearn_bench.errors import ConfigError, UnlearnBenchError, one_line

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
MAX_SETUPS = 256


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def sweep_jobs(args: list[str], compose, config_name: str = "config") -> list[list[str]] | None:
    """Every job's overrides in launch order, or None where the basic sweeper does not choose the jobs."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from unlearn_bench.config import first_values

    parser = OverridesParser.create()
    first = compose(config_name, overrides=first_values(parser.parse_overrides(args)),
                    return_hydra_config=True)
    sweeper = first.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    overrides = parser.parse_overrides(params + list(args))
    if any(o.is_sweep_override() and not o.is_discrete_sweep() for o in overrides):
        return None  # ranges and intervals: Hydra's own error says more than we could
    return BasicSweeper.split_arguments(overrides, None)[0]


def count_jobs(args: list[str], config_name: str = "config") -> int | None:
    """How many jobs the multirun ``args`` launches in this process, or None when that is not known here
    (a sweeper choosing as it goes, or a launcher that runs jobs in other processes)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from unlearn_bench.config import CONFIG_DIR, first_values
    try:
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            jobs = sweep_jobs(args, compose, config_name)
            line = first_values(OverridesParser.create().parse_overrides(args))
            first = compose(config_name, overrides=line, return_hydra_config=True)
            launcher = str(first.hydra.launcher.get("_target_", ""))
    except (HydraException, ValueError):
        return None
    return len(jobs) if jobs is not None and launcher.endswith("BasicLauncher") else None


def unnamed_keys(sweep_dirs: str, varying: set[str]) -> list[str]:
    """The swept keys that ``sweep_dirs`` (the raw, unresolved ``hydra.sweep.dir`` and ``subdir``) does not
    name: jobs that differ only in them would write to one run directory."""
    if any(t in sweep_dirs for t in ("override_dirname", "job.num", "job.id")):  # a folder per job
        return []
    return sorted(k for k in varying
                  if f"choices.{k}}}" not in sweep_dirs and f"${{{k}}}" not in sweep_dirs)


def check_run_dirs(first, varying: set[str]) -> None:
    """Refuse a sweep whose jobs would share run directories: a later job would overwrite an earlier one."""
    from omegaconf import OmegaConf
    raw = OmegaConf.to_container(first.hydra.sweep, resolve=False)
    missing = unnamed_keys(f"{raw.get('dir', '')}/{raw.get('subdir', '')}", varying)
    if missing:
        raise ConfigError(f"the jobs differ in {', '.join(missing)}, which the run directory "
                          f"(hydra.sweep.subdir) does not name, so their runs would overwrite each other; "
                          f"fix: name it in hydra.sweep.subdir as conf/experiment/h_sweep.yaml names "
                          f"method.h, or run one sweep per value with its own name=; no job was started")


def check_sweep(args: list[str], config_name: str = "config") -> int:
    """Validate every job of the multirun ``args``; returns the number of setups built and validated.
    Raises ``ConfigError`` naming the first invalid job and what varies in it."""
    if os.environ.get("UNLEARN_BENCH_SWEEP_CHECK", "1") == "0":
        return 0
    from hydra import compose, initialize_config_dir

    from unlearn_bench.config import CONFIG_DIR
    from unlearn_bench.run.validate import check_config, validate_config

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        jobs = sweep_jobs(args, compose, config_name)
        if not jobs or len(jobs) < 2:
            return 0
        varying = {_key(o) for o in jobs[0]} - {
            _key(o) for o in jobs[0] if all(o in job for job in jobs)}
        setups, seeds, built = set(), set(), 0
        for i, job in enumerate(jobs):
            setup = tuple(o for o in job if _key(o) != "seed")
            seed = tuple(o for o in job if _key(o) == "seed")
            full = setup not in setups and built < MAX_SETUPS
            if not full and seed in seeds:
                continue
            try:
                cfg = compose(config_name, overrides=job, return_hydra_config=True)
                if full:
                    validate_config(cfg)
                    built += 1
                    setups.add(setup)
                else:
                    check_config(cfg)
                seeds.add(seed)
            except (UnlearnBenchError, HydraException) as e:  # a config error, data not found, or a job
                what = " ".join(o for o in job if _key(o) in varying)  # that does not compose
                text = one_line(e, 300)
                if text.startswith("Could not override '"):  # a key another swept option has, this one not
                    key = text.split("'")[1]
                    text = (f"{key} is not a setting of {what}; fix: sweep only options that have it, or "
                            f"run the others without it")
                raise ConfigError(f"job {i + 1} of {len(jobs)} ({what}): {text}; no job was started") from e
            if i == 0:  # one directory pattern for every job; checked on the first job's composed config
                check_run_dirs(cfg, varying)
    return built
