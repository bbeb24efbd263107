"""A Hydra launcher running each job of a multirun as a Ray task, on a local Ray instance or a running
cluster.

It lives in the ``hydra_plugins`` namespace because Hydra only instantiates launchers found there. It
replaces ``hydra-ray-launcher``, whose pin ``cloudpickle<3`` cannot be installed beside joblib's launcher
(``cloudpickle>=3``), and which passes ``object_store_memory`` even when it connects to an existing
cluster (Ray refuses that). Ray serialises the task with its own vendored cloudpickle, so nothing here
needs the package.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from .skip import launch_unfinished

log = logging.getLogger(__name__)


def _run_remote(hydra_context: HydraContext, sweep_config: DictConfig, task_function: TaskFunction,
                singleton_state: dict[Any, Any]) -> JobReturn:
    """Body of one Ray task: restore Hydra's global state in the worker, then run the job as the basic
    launcher would (its own run directory, logging and config)."""
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, task_function=task_function, config=sweep_config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def init_kwargs(init: DictConfig | dict | None) -> dict:
    """Arguments for ``ray.init``: unset values are dropped, and a local instance started here gets a
    small object store (the runs exchange only configs and results) unless one is given. Ray refuses
    ``object_store_memory`` when it joins an existing cluster, so it is never passed then."""
    kw = {k: v for k, v in (OmegaConf.to_container(init, resolve=True) if isinstance(init, DictConfig)
                            else dict(init or {})).items() if v is not None}
    joins = bool(kw.get("address")) or bool(os.environ.get("RAY_ADDRESS"))
    if joins:
        kw.pop("object_store_memory", None)
    else:
        kw.setdefault("object_store_memory", 80 * 2**20)
    return kw


class RayLauncher(Launcher):
    """``init``: keyword arguments of ``ray.init`` (``address: null`` starts a local instance; an address
    or ``auto`` joins a cluster). ``remote``: resources each task asks for (``num_cpus``, ``num_gpus``,
    ``max_retries`` ...), passed to ``ray.remote``."""

    def __init__(self, init: DictConfig | None = None, remote: DictConfig | None = None,
                 dry_run: bool = False) -> None:
        self.init, self.remote, self.dry_run = init, remote, bool(dry_run)
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return launch_unfinished(self, job_overrides, initial_job_idx, self._submit, self.dry_run)

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        import ray

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(**init_kwargs(self.init))
        remote_kw = OmegaConf.to_container(self.remote, resolve=True) if self.remote is not None else {}
        task = ray.remote(**{k: v for k, v in remote_kw.items() if v is not None})(_run_remote)
        log.info("Ray: %d jobs to %s, outputs under %s", len(job_overrides),
                 ray.get_runtime_context().gcs_address, sweep_dir)
        pending = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"ray_{idx}"
                sweep_config.hydra.job.num = idx
            pending.append(task.remote(self.hydra_context, sweep_config, self.task_function,
                                       Singleton.get_state()))
        return ray.get(pending)
