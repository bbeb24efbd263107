"""The run context: everything built from a config before a run writes a file — data on the device,
split, model factory, method, model cache — and cost measurement."""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from unlearn_bench.config import choices, plain_config
from unlearn_bench.data.batches import Normalizer
from unlearn_bench.data.splits import Split, make_split
from unlearn_bench.eval import outputs as evaluation
from unlearn_bench.methods.base import Method, Subset, UnlearnData
from unlearn_bench.run.cache import (
    ModelCache,
    read_verified_json,
    read_verified_npz,
    write_verified_json,
    write_verified_npz,
)
from unlearn_bench.run.identity import OUTPUTS_VERSION, RETRAIN_SEED_OFFSET, spec_key
from unlearn_bench.train.loop import (
    STAGES,
    cross_entropy,
    fit,
    norm_stats_scope,
    precision_scope,
    resolve_precision,
)

log = logging.getLogger("unlearn_bench")


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class _RssPeak(threading.Thread):
    """Samples the process's resident memory every 5 ms: the CPU stand-in for max_memory_allocated."""

    def __init__(self):
        super().__init__(daemon=True)
        self.start_mb = self.peak_mb = _rss_mb()
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.005):
            self.peak_mb = max(self.peak_mb, _rss_mb())


@contextmanager
def measure(device: str, out: dict, prefix: str):
    """Wall-clock seconds (synchronised on GPU) and peak memory of the enclosed block: on GPU the peak
    allocated by torch; on CPU the peak resident memory *added* during the block (sampled)."""
    cuda = device.startswith("cuda")
    sampler = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    elif Path("/proc/self/statm").exists():
        sampler = _RssPeak()
        sampler.start()
    t0 = time.perf_counter()
    yield
    if cuda:
        torch.cuda.synchronize()
    out[f"{prefix}_s"] = time.perf_counter() - t0
    if cuda:
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    elif sampler is not None:
        sampler.done.set()
        sampler.join()
        out["peak_mem_mb"] = max(sampler.peak_mb, _rss_mb()) - sampler.start_mb


class Context:
    """Everything built from the config before any run-directory file is written."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.labels = choices(cfg)
        self.device = pick_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
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
        layout = self.cfg.channels_last
        self.channels_last = (dev.startswith("cuda") if layout == "auto" else bool(layout)) and d.train_x.shape[-1] > 1
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
        if self.data.fingerprint:  # a user's own files: their content, not where they lie, names the models
            data.pop("path", None)
            data["fingerprint"] = self.data.fingerprint
        return {"data": data, "model": plain_config(self.cfg)["model"], "train": plain_config(self.cfg)["train"],
                "seed": int(self.cfg.seed), "unseen": plain_config(self.cfg)["forget"]["unseen"],
                "precision": self.precision}

    def _trainer(self, subset: Subset, job: str, logger, shuffle_seed: int | None = None):
        recipe = self.cfg.train
        shuffle_seed = int(self.cfg.seed) if shuffle_seed is None else int(shuffle_seed)

        def train(model, resume=None):
            model.to(self.device)
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
            batches = subset.batches(recipe.batch_size, shuffle=True, seed=shuffle_seed,
                                     augment=bool(recipe.augment))
            # the precision its cache key records, also outside run(); reference models always update their
            # normalisation statistics, even when an unlearning step that freezes them trains them lazily
            with precision_scope(self.precision), norm_stats_scope("update"):
                curve = fit(model, batches, cross_entropy(recipe.label_smoothing), instantiate(recipe.optimizer),
                            self.device, epochs=recipe.epochs, schedule=recipe.schedule,
                            logger=logger.lightning(job), progress=STAGES.get(job, job) if self.cfg.progress else False,
                            resume=resume)
            return {"curve": curve, "job": job}
        return train

    def original(self, logger):
        s = self.split
        x, y = (self.train_x, self.train_y)
        subset = self.subset(x, y, s.train_idx)
        model, meta, hit = self.cache.get_or_train("original", self._spec(), lambda: self.build_model(self.cfg.seed),
                                                   self._trainer(subset, "train", logger), resumable=True)
        return self.placed(model), meta, hit

    def placed(self, model):
        """On the device, in eval mode, in channels_last when the run uses it (also after a cache load)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model.eval()

    def logits(self, model, meta: dict) -> dict[str, np.ndarray]:
        """Logits of a *cached* model on this run's splits, computed once per (checkpoint, split) and kept
        beside the checkpoint: every method of a sweep shares the original's and the oracle's outputs."""
        path = self._outputs_path(meta, ".npz")
        out = read_verified_npz(path) if path.exists() else None  # its content hash checked, else None
        if out is not None and set(out) == set(self.subsets) and \
                all(len(out[k]) == len(v) for k, v in self.subsets.items()):
            return out
        out = evaluation.collect(model, self.subsets, self.cfg.eval.batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_verified_npz(path, out, "cached logits")
        return out

    def _outputs_path(self, meta: dict, suffix: str) -> Path:
        split_hash = hashlib.sha256(json.dumps(asdict(self.split), sort_keys=True).encode()).hexdigest()[:16]
        return (self.cache.root / "logits" /
                f"{meta['sha256'][:20]}-{split_hash}-e{OUTPUTS_VERSION}{suffix}")

    def cached_metrics(self, meta: dict, tag: str, compute) -> dict:
        """``compute()`` for a *cached* model, once per (checkpoint, split, ``tag``), kept as JSON beside its
        logits. The tag names everything else the result depends on (seed, reference model, definition
        version). On full CIFAR the population attacks of the original and the oracle cost seconds of CPU
        per run (an RBF SVC on 18,000 points), the same in every run of a sweep."""
        path = self._outputs_path(meta, f"-{tag}.json")
        out = read_verified_json(path) if path.exists() else None  # its content hash checked, else None
        if isinstance(out, dict):
            return out
        out = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_verified_json(path, out, "cached attack results")
        return out

    def unlearn_data(self, method: Method, retain: Subset, oracle, seed: int, logger=False,
                     progress: bool = False) -> UnlearnData:
        """What ``method`` may see (its regime decides; the oracle only if it declares needs_oracle)."""
        return UnlearnData(
            regime=method.regime, method=self.method_label, num_classes=self.data.num_classes,
            forget_classes=self.split.forget_classes, device=self.device, seed=seed, recipe=self.cfg.train,
            _sets={"retain": retain, "forget": self.subsets["forget_train"], "unseen": self.subsets["unseen"]},
            _unseen_retain=self.unseen_retain if method.needs_unseen_retain else None,
            _oracle=oracle if method.needs_oracle else None, logger=logger,
            progress=self.method_label if progress else False)  # the stage a training's bar names

    def _retrain_spec(self) -> dict:
        return {**self._spec(), "forget_classes": self.split.forget_classes}

    def retrain_cached(self) -> bool:
        """Whether the oracle for this config is in the cache (checked without training it)."""
        pt, meta = self.cache.paths("retrain", spec_key(self._retrain_spec()))
        return pt.exists() and meta.exists()

    def retrain(self, logger):
        spec = self._retrain_spec()
        model, meta, hit = self.cache.get_or_train(
            "retrain", spec, lambda: self.build_model(self.cfg.seed + RETRAIN_SEED_OFFSET),
            self._trainer(self.subsets["retain_train"], "retrain", logger), resumable=True)
        return self.placed(model), {**meta, "cache_hit": hit}
