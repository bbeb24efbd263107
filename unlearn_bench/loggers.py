"""Run loggers selected by ``logger=none|csv|wandb``. The run directory stays the source of truth;
loggers mirror it. ``finish`` always runs (the pipeline calls it in ``finally``) so multirun jobs never
merge into one wandb run."""

from __future__ import annotations

import os
from pathlib import Path


class NoLogger:
    def start(self, run_dir: Path, config: dict, name: str, group: str, tags: list[str]) -> None:
        pass

    def lightning(self, job_type: str):
        return False

    def log_summary(self, metrics: dict) -> None:
        pass

    def finish(self) -> None:
        pass


class CSVLogger(NoLogger):
    """Lightning's CSV logger: loss curves under ``<run_dir>/csv/<job_type>/``."""

    def start(self, run_dir, config, name, group, tags):
        self.run_dir = Path(run_dir)

    def lightning(self, job_type):
        from lightning.pytorch.loggers import CSVLogger as LCSV
        return LCSV(save_dir=str(self.run_dir / "csv"), name=job_type, version="")


class WandbLogger(NoLogger):
    """wandb, offline unless ``mode=online`` (or WANDB_MODE) is set: runs land in ``<run_dir>/wandb`` and
    can be uploaded later with ``wandb sync``."""

    def __init__(self, project: str = "unlearn-bench", entity: str | None = None, mode: str = "offline"):
        self.project, self.entity, self.mode = project, entity, os.environ.get("WANDB_MODE", mode)
        self.run = None

    def start(self, run_dir, config, name, group, tags):
        import wandb
        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, dir=str(run_dir),
                              name=name, group=group, job_type="unlearn", tags=tags, config=config,
                              reinit="finish_previous")

    def lightning(self, job_type):
        from lightning.pytorch.loggers import WandbLogger as LW
        return LW(experiment=self.run) if self.run is not None else False

    def log_summary(self, metrics):
        if self.run is not None:
            self.run.summary.update({k: v for k, v in metrics.items() if v is not None})

    def finish(self):
        if self.run is not None:
            self.run.finish()
            self.run = None
