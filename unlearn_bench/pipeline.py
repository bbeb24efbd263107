"""``run(cfg) -> dict``: one unlearning run, end to end. The Hydra entry point is a thin wrapper.

Order: validate everything (no file written) -> write config/split/env -> original model (cached) ->
unlearn (timed alone) -> collect outputs -> metrics -> predictions.npz -> metrics.json (last, atomic).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unlearn_bench import evaluation
from unlearn_bench.batches import Normalizer
from unlearn_bench.cache import ModelCache
from unlearn_bench.errors import Diverged
from unlearn_bench.methods.base import Method, Subset, UnlearnData
from unlearn_bench.splits import Split, make_split
from unlearn_bench.store import env_info, read_complete, write_json
from unlearn_bench.training import check_finite, cross_entropy, fit
from unlearn_bench.validate import validate_run

log = logging.getLogger("unlearn_bench")
RETRAIN_SEED_OFFSET = 1_000_003  # the oracle's initialisation is independent of the original's


def choices(cfg: DictConfig) -> dict:
    """Config-group choices (e.g. method -> 'finetune'): the labels used everywhere."""
    if "hydra" in cfg:
        return dict(cfg.hydra.runtime.choices)
    from hydra.core.hydra_config import HydraConfig
    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def plain_config(cfg: DictConfig) -> dict:
    """The resolved run configuration without Hydra's own node."""
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in cfg if k != "hydra"}


def config_hash(cfg: DictConfig) -> str:
    c = plain_config(cfg)
    for volatile in ("cache_dir", "logger", "progress"):
        c.pop(volatile, None)
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@contextmanager
def measure(device: str, out: dict, prefix: str):
    """Wall-clock seconds (synchronised on GPU) and peak memory of the enclosed block."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    yield
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:  # process-wide peak RSS: an upper bound on the block's own memory
        out["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out[f"{prefix}_s"] = time.perf_counter() - t0


class Context:
    """Everything built from the config before any run-directory file is written."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.labels = choices(cfg)
        self.device = pick_device(cfg.device)
        self.data = instantiate(cfg.data).load(cfg.cache_dir)
        self.model_factory = instantiate(cfg.model)
        self.method: Method = instantiate(cfg.method)
        self.method_label = self.labels.get("method", type(self.method).__name__.lower())
        self.split: Split = make_split(self.data.train_y.numpy(), self.data.test_y.numpy(),
                                       self.data.num_classes, cfg.forget.classes, cfg.forget.unseen.source,
                                       cfg.forget.unseen.per_class, cfg.seed)
        self.cache = ModelCache(cfg.cache_dir)

    def build_model(self, seed: int):
        torch.manual_seed(seed)
        return self.model_factory(in_shape=self.data.in_shape, num_classes=self.data.num_classes)

    # -- device tensors -------------------------------------------------------------------------------
    def to_device(self) -> None:
        d, dev = self.data, self.device
        self.normalize = Normalizer(d.mean, d.std, dev)
        self.train_x, self.train_y = d.train_x.to(dev), d.train_y.to(dev)
        self.test_x, self.test_y = d.test_x.to(dev), d.test_y.to(dev)
        self.channels_last = dev.startswith("cuda") and d.train_x.shape[-1] > 1
        s = self.split
        unseen_src = (self.train_x, self.train_y) if s.unseen_source == "holdout" else (self.test_x, self.test_y)
        forget_pool = s.unseen_of(s.forget_classes)
        other = [c for c in range(d.num_classes) if c not in s.forget_classes]
        self.subsets = {
            "forget_train": self.subset(self.train_x, self.train_y, s.forget_train),
            "retain_train": self.subset(self.train_x, self.train_y, s.retain_train),
            "forget_test": self.subset(self.test_x, self.test_y, s.forget_test),
            "retain_test": self.subset(self.test_x, self.test_y, s.retain_test),
            "unseen": self.subset(*unseen_src, forget_pool),
        }
        self.unseen_retain = self.subset(*unseen_src, s.unseen_of(other)) if other else None

    def subset(self, x, y, idx) -> Subset:
        idx = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=x.device)
        return Subset(x[idx], y[idx], self.normalize, self.data.augment, self.channels_last)

    # -- cached models ---------------------------------------------------------------------------------
    def _spec(self) -> dict:
        data = {k: v for k, v in plain_config(self.cfg)["data"].items() if k not in ("root", "download",
                                                                                      "system_dirs")}
        return {"data": data, "model": plain_config(self.cfg)["model"], "train": plain_config(self.cfg)["train"],
                "seed": int(self.cfg.seed), "unseen": plain_config(self.cfg)["forget"]["unseen"]}

    def _trainer(self, subset: Subset, job: str, logger):
        recipe = self.cfg.train

        def train(model):
            model.to(self.device)
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
            batches = subset.batches(recipe.batch_size, shuffle=True, seed=int(self.cfg.seed),
                                     augment=bool(recipe.augment))
            curve = fit(model, batches, cross_entropy(recipe.label_smoothing), instantiate(recipe.optimizer),
                        self.device, epochs=recipe.epochs, schedule=recipe.schedule,
                        logger=logger.lightning(job), progress=self.cfg.progress)
            return {"curve": curve, "job": job}
        return train

    def original(self, logger):
        s = self.split
        x, y = (self.train_x, self.train_y)
        subset = self.subset(x, y, s.train_idx)
        model, meta, hit = self.cache.get_or_train("original", self._spec(), lambda: self.build_model(self.cfg.seed),
                                                   self._trainer(subset, "train", logger))
        return model.to(self.device).eval(), meta, hit

    def retrain(self, logger):
        spec = {**self._spec(), "forget_classes": self.split.forget_classes}
        model, meta, hit = self.cache.get_or_train(
            "retrain", spec, lambda: self.build_model(self.cfg.seed + RETRAIN_SEED_OFFSET),
            self._trainer(self.subsets["retain_train"], "retrain", logger))
        return model.to(self.device).eval(), {**meta, "cache_hit": hit}


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
    """Run one (data, model, method, forget set, seed) configuration; returns metrics.json's content."""
    run_dir = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    chash = config_hash(cfg)
    done = read_complete(run_dir)
    if done is not None and done.get("config_hash") == chash:
        log.info("skipping %s: a complete metrics.json for this config exists", run_dir)
        return done

    L.seed_everything(int(cfg.seed), workers=False, verbose=False)
    ctx = Context(cfg)
    validate_run(ctx)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain_config(cfg))))
    ctx.split.save(run_dir / "split.json")
    write_json(run_dir / "env.json", env_info(ctx.device))

    logger = instantiate(cfg.logger)
    tags = [ctx.method_label, ctx.labels.get("data", ""), ctx.labels.get("model", "")]
    logger.start(run_dir, plain_config(cfg), f"{ctx.method_label}-{run_dir.name}", cfg.name, tags)
    try:
        return _run(ctx, run_dir, chash, logger)
    finally:
        logger.finish()


def _run(ctx: Context, run_dir: Path, chash: str, logger) -> dict:
    cfg = ctx.cfg
    ctx.to_device()
    original, meta, hit = ctx.original(logger)
    data = UnlearnData(
        regime=ctx.method.regime, method=ctx.method_label, num_classes=ctx.data.num_classes,
        forget_classes=ctx.split.forget_classes, device=ctx.device, seed=int(cfg.seed), recipe=cfg.train,
        _sets={"retain": ctx.subsets["retain_train"], "forget": ctx.subsets["forget_train"],
               "unseen": ctx.subsets["unseen"]},
        _unseen_retain=ctx.unseen_retain if ctx.method.needs_unseen_retain else None,
        _oracle=lambda: ctx.retrain(logger), logger=logger.lightning("unlearn"), progress=cfg.progress)

    result = {"status": "ok", "method": ctx.method_label, "data": ctx.labels.get("data", ctx.data.name),
              "model": ctx.labels.get("model", ""), "forget": "-".join(map(str, ctx.split.forget_classes)),
              "seed": int(cfg.seed), "regime": ctx.method.regime.value, "name": cfg.name,
              "config_hash": chash, "original_cache_hit": hit, "original_train_s": meta.get("train_s")}
    cost: dict = {}
    torch.manual_seed(int(cfg.seed))
    try:
        with measure(ctx.device, cost, "unlearn"):
            unlearned = ctx.method.unlearn(copy.deepcopy(original), data)
        check_finite(unlearned)
    except Diverged as e:
        result.update(status="failed", reason=str(e), **{f"cost/{k}": v for k, v in cost.items()})
        write_json(run_dir / "metrics.json", result)
        logger.log_summary(result)
        log.warning("%s failed: %s", ctx.method_label, e)
        return result
    result.update({f"cost/{k}": v for k, v in cost.items()})
    result.update(getattr(ctx.method, "extra_metrics", {}))

    t0 = time.perf_counter()
    labels = {k: s.y.cpu().numpy() for k, s in ctx.subsets.items()}
    logits_o = evaluation.collect(original, ctx.subsets, cfg.eval.batch_size)
    logits_u = evaluation.collect(unlearned, ctx.subsets, cfg.eval.batch_size)
    result.update(evaluation.accuracies(logits_u, labels))
    result.update(evaluation.accuracies(logits_o, labels, prefix="original/"))
    result["cost/eval_s"] = time.perf_counter() - t0

    np.savez_compressed(run_dir / "predictions.npz",
                        **{f"logits_{k}": v for k, v in logits_u.items()},
                        **{f"original_logits_{k}": v for k, v in logits_o.items()},
                        **{f"labels_{k}": v for k, v in labels.items()})
    ctx.method.write_artifacts(run_dir, original, unlearned, data)
    write_json(run_dir / "metrics.json", result)
    logger.log_summary(result)
    return result


def _hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()
