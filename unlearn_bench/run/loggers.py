"""Run loggers selected by ``logger=none|csv|wandb``. The run directory stays the source of truth;
loggers mirror it. ``finish`` always runs (the pipeline calls it in ``finally``) so multirun jobs never
merge into one wandb run."""

from __future__ import annotations

import math
import os
from pathlib import Path


class NoLogger:
    def start(self, run_dir: Path, config: dict, name: str, group: str, tags: list[str],
              task: dict | None = None) -> None:
        """``name`` and ``tags`` label the unlearning run; ``task`` (data, model, forget, seed) labels the
        shared models a run trains on a cache miss."""

    def lightning(self, job_type: str):
        return False

    def log_summary(self, metrics: dict) -> None:
        pass

    def log_tables(self, per_class, roc) -> None:
        """Per-class accuracies and attack ROC points (pandas frames; also written to the run directory)."""

    def finish(self) -> None:
        pass


SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password")


def scrub(config):
    """The config without any entry whose name suggests a credential: nothing secret reaches a logger."""
    if isinstance(config, dict):
        return {k: scrub(v) for k, v in config.items() if not any(w in str(k).lower() for w in SECRET_WORDS)}
    if isinstance(config, list):
        return [scrub(v) for v in config]
    return config


class CSVLogger(NoLogger):
    """Lightning's CSV logger: loss curves under ``<run_dir>/csv/<job_type>/``."""

    def start(self, run_dir, config, name, group, tags, task=None):
        self.run_dir = Path(run_dir)

    def lightning(self, job_type):
        from lightning.pytorch.loggers import CSVLogger as LCSV
        return LCSV(save_dir=str(self.run_dir / "csv"), name=job_type, version="")


# the training job a run names "train" is the original model's
ROLES = {"train": "original"}
# settings that shape the unlearning step only, not a shared model: left out of a training run's config
METHOD_KEYS = ("method", "method_seed")


class WandbLogger(NoLogger):
    """wandb, offline unless ``mode=online`` (or WANDB_MODE) is set: runs land in ``<run_dir>/wandb`` and
    can be uploaded later with ``wandb sync`` (a whole sweep: ``wandb sync $(find <sweep dir> -type d -name
    'offline-run-*')``). The run's main wandb run has job_type ``unlearn`` and holds the summary (every key of
    metrics.json) and tables; each model trained on a cache miss (original, retrain, shadows) gets its own run
    with job_type ``train`` in the same group, so loss curves never share a step axis. Such a model is shared
    by every method of its setup, whichever run happened to train it, so its run is named and tagged by what
    it is (``original-digits-mlp-seed0``; tags original, data, model), and its config leaves the method out.
    Credentials come from wandb's own login/env only; config entries that look like secrets are dropped."""

    def __init__(self, project: str = "unlearn-bench", entity: str | None = None, mode: str = "offline"):
        self.project, self.entity, self.mode = project, entity, os.environ.get("WANDB_MODE", mode)
        self.run = None
        self._train_runs: list = []

    def _init(self, job_type: str, name: str, tags: list[str], config: dict):
        import wandb
        return wandb.init(project=self.project, entity=self.entity, mode=self.mode, dir=str(self.run_dir),
                          name=name, group=self.group, job_type=job_type, tags=tags, config=config,
                          reinit="create_new")

    def start(self, run_dir, config, name, group, tags, task=None):
        self.run_dir, self.config, self.name, self.group = Path(run_dir), scrub(config), name, group
        self.tags, self.task, self._named = [t for t in tags if t], dict(task or {}), {}
        self.run = self._init("unlearn", name, self.tags, self.config)

    def model_run(self, job_type: str) -> tuple[str, list[str]]:
        """(name, tags) of the wandb run that trains a shared model: ``original-<data>-<model>-seed<s>``,
        ``retrain-<data>-<model>-forget<f>-seed<s>``, ``shadow_original-...``; a second model of one kind in
        the same run gets ``-2``, and so on."""
        role, t = ROLES.get(job_type, job_type), self.task
        parts = [role, t.get("data"), t.get("model")]
        if role != "original" and t.get("forget") not in (None, ""):
            parts.append(f"forget{t['forget']}")
        if t.get("seed") is not None:
            parts.append(f"seed{t['seed']}")
        name = "-".join(str(p) for p in parts if p not in (None, ""))
        self._named[name] = self._named.get(name, 0) + 1
        if self._named[name] > 1:
            name += f"-{self._named[name]}"
        return name, [x for x in (role, t.get("data"), t.get("model")) if x]

    def lightning(self, job_type):
        from lightning.pytorch.loggers import WandbLogger as LW
        if self.run is None:
            return False
        if job_type == "unlearn":
            return LW(experiment=self.run)
        self._finish_train_runs()  # the previous training job has ended by the time the next one starts
        name, tags = self.model_run(job_type)
        run = self._init("train", name, tags, {k: v for k, v in self.config.items() if k not in METHOD_KEYS})
        self._train_runs.append(run)
        return LW(experiment=run)

    def log_summary(self, metrics):
        if self.run is not None:
            # the same values metrics.json holds: non-finite floats become null
            self.run.summary.update({k: None if isinstance(v, float) and not math.isfinite(v) else v
                                     for k, v in metrics.items()})

    def log_tables(self, per_class, roc):
        if self.run is None:
            return
        import wandb
        self.run.log({"per_class_accuracy": wandb.Table(dataframe=per_class)})
        if len(roc):
            best = roc[roc["strongest"]]
            table = wandb.Table(dataframe=best[["fpr", "tpr"]].reset_index(drop=True))
            title = f"ROC of the strongest attack: {best['attack'].iloc[0]} (AUC {best['auc'].iloc[0]:.3f})"
            self.run.log({"roc_strongest": wandb.plot.line(table, "fpr", "tpr", title=title),
                          "roc_all": wandb.Table(dataframe=roc)})

    def _finish_train_runs(self):
        while self._train_runs:
            self._train_runs.pop().finish()

    def finish(self):
        self._finish_train_runs()
        if self.run is not None:
            self.run.finish()
            self.run = None
