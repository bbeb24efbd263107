"""What each multirun launch lists: its expected jobs, written when the sweep starts.

``RecordLaunch`` (a Hydra callback, registered in conf/config.yaml, so every ``unlearn-bench -m`` has it
whatever the launcher) writes ``<sweep dir>/.launches/<UTC time>-<pid>.json`` when a multirun starts: every
job's override list, expanded as Hydra's basic sweeper expands it (``hydra.sweeper.params`` first, then the
command line; a later value of a key replaces an earlier one in its place), without composing any job's
config. For another sweeper (Optuna) the record holds the number of trials instead. Each job also notes its
override list in its folder (``.hydra/launched.jsonl``) when it starts, or when a launcher skips it as
finished, so a folder rerun with another override list still answers for the first one.

Reading the records back: ``jobs.py`` resolves each job to its folder and state, ``expected.py`` counts them
per table row and lists the missing ones.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from hydra.experimental.callback import Callback

log = logging.getLogger("unlearn_bench")
LAUNCHES = ".launches"
HISTORY = "launched.jsonl"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def expand_jobs(task: list[str], params: dict | None, config_loader=None) -> list[list[str]]:
    """Every job's override list, in launch order, as ``BasicSweeper.sweep`` builds it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(task)
    overrides = OverridesParser.create(config_loader=config_loader).parse_overrides(lines)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def launch_record(config) -> dict:
    """What a multirun's config says it will launch (see the module docstring)."""
    from omegaconf import OmegaConf
    sweeper = config.hydra.sweeper
    target = str(sweeper.get("_target_", ""))
    task = [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)]
    rec = {"version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pid": os.getpid(),
           "sweeper": target, "launcher": str(config.hydra.launcher.get("_target_", "")), "command": task,
           "output_subdir": config.hydra.output_subdir, "jobs": None, "trials": None}
    if target == BASIC_SWEEPER:
        from hydra.core.global_hydra import GlobalHydra
        params = OmegaConf.to_container(sweeper.params, resolve=True) if sweeper.get("params") else {}
        loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
        rec["jobs"] = expand_jobs(task, params, loader)
    elif sweeper.get("n_trials") is not None:
        rec["trials"] = int(sweeper.n_trials)
    return rec


def note_job(run_dir: str | Path, overrides, subdir: str | None = ".hydra") -> None:
    """Add ``overrides`` to the override lists ``run_dir`` has answered for (once each)."""
    if subdir is None:
        return
    path = Path(run_dir) / subdir / HISTORY
    line = json.dumps(sorted(str(o) for o in overrides))
    if path.is_file() and line in path.read_text().splitlines():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(line + "\n")


class RecordLaunch(Callback):
    """Records each multirun's expected jobs (module docstring); never stops a sweep: a record it cannot
    write is one warning line, and the runs go on."""

    def on_multirun_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf
        if OmegaConf.select(config, "hydra.launcher.dry_run", default=False):
            return  # a dry run launches nothing
        try:
            rec = launch_record(config)
            sweep = Path(str(config.hydra.sweep.dir))
            name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.json"
            _write_json(sweep / LAUNCHES / name, rec)
        except Exception as e:  # noqa: BLE001 -- the sweep itself reports what is wrong with its config
            log.warning("the launch record was not written (%s: %s); the report will not list this sweep's "
                        "expected runs", e.__class__.__name__, str(e).splitlines()[0] if str(e) else "")

    def _note(self, config, overrides) -> None:
        from hydra.types import RunMode
        from omegaconf import OmegaConf
        if OmegaConf.select(config, "hydra.mode", default=None) != RunMode.MULTIRUN:
            return
        try:
            note_job(str(config.hydra.runtime.output_dir), overrides, config.hydra.output_subdir)
        except Exception as e:  # noqa: BLE001 -- bookkeeping must not end a run
            log.warning("could not note the job in its folder (%s)", e)

    def on_job_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf
        self._note(config, OmegaConf.to_container(config.hydra.overrides.task, resolve=False))

    def on_job_end(self, config, job_return, **kwargs) -> None:
        # also called for jobs a launcher skipped as finished (hydra_plugins/.../skip.py), which never start
        self._note(config, job_return.overrides or [])
