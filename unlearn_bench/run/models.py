"""The models a run compares and what is derived from them, each trained once per spec (``ModelCache``).

- ``original()``: the run's recipe on the training split; ``oracle()``: the same on D_r (another init).
- ``reference(kind, i, ...)``: the i-th reference model of ``REFERENCE_KINDS`` for eval=full
  (``eval/reference_models.py``): U-LiRA's shadow pairs, forgetting quality's retrains, KLOM's originals.
- ``logits()`` / ``cached_metrics()``: outputs of a cached model on this run's split, kept beside it.

A spec names what trains a model except the method, so every method of a sweep shares these entries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

from unlearn_bench.eval import outputs
from unlearn_bench.run.cache import (
    ModelCache,
    read_verified_json,
    read_verified_npz,
    write_verified_json,
    write_verified_npz,
)
from unlearn_bench.run.identity import (
    FQ_SEED_OFFSET,
    KLOM_SEED_OFFSET,
    OUTPUTS_VERSION,
    RETRAIN_SEED_OFFSET,
    SHADOW_SEED_OFFSET,
    reference_seed,
    spec_key,
)
from unlearn_bench.run.loggers import NoLogger
from unlearn_bench.train.loop import STAGES, cross_entropy, fit

REFERENCE_KINDS = ("shadow_original", "shadow_retrain", "fq_retrain", "klom_original")
# Initialisation seeds beside a reference model's own (``identity.reference_seed``) for the models trained
# with it: a shadow retrain (+1), a shadow's twin (+2) and a retrain's twin (+5). Cached models are named by
# them: kept as they were.
SHADOW_RETRAIN_INIT, SHADOW_TWIN_INIT, FQ_TWIN_INIT = 1, 2, 5


class ModelStore:
    """The cached models of the run ``ctx`` (a ``context.Context``); ``logger`` labels their trainings
    (progress bars, experiment-tracker runs) where one is trained instead of loaded."""

    def __init__(self, ctx, logger=None):
        self.ctx = ctx
        self.logger = NoLogger() if logger is None else logger
        self.cache = ModelCache(ctx.cfg.cache_dir)

    # -- the run's two models ------------------------------------------------------------------------
    def original(self):
        """(model, meta, cache hit): the original model, placed as the run places models."""
        ctx = self.ctx
        model, meta, hit = self.cache.get_or_train(
            "original", ctx.spec(), lambda: ctx.build_model(ctx.cfg.seed),
            self._trainer(ctx.train_subset(ctx.split.train_idx), "train"), resumable=True)
        return ctx.placed(model), meta, hit

    def oracle(self):
        """(model, meta with ``cache_hit``): the retrain oracle, trained on D_r from its own
        initialisation."""
        ctx = self.ctx
        model, meta, hit = self.cache.get_or_train(
            "retrain", ctx.retrain_spec(), lambda: ctx.build_model(ctx.cfg.seed + RETRAIN_SEED_OFFSET),
            self._trainer(ctx.subsets["retain_train"], "retrain"), resumable=True)
        return ctx.placed(model), {**meta, "cache_hit": hit}

    def oracle_cached(self) -> bool:
        """Whether the oracle for this config is in the cache (checked without training it)."""
        pt, meta = self.cache.paths("retrain", spec_key(self.ctx.retrain_spec()))
        return pt.exists() and meta.exists()

    # -- reference models (eval=full) ------------------------------------------------------------------
    def shadow_half(self, i: int, half_seed: int) -> np.ndarray:
        """The random half of D_r (training-split indices, sorted) the i-th U-LiRA shadow pair trains on:
        a function of (half_seed, i) only, so the shadows stay cached across runs."""
        retain = np.asarray(self.ctx.split.retain_train)
        rng = np.random.default_rng([half_seed, i, 17])
        return np.sort(rng.choice(retain, size=len(retain) // 2, replace=False))

    def reference(self, kind: str, i: int, half_seed: int | None = None, twin: bool = False):
        """The i-th reference model of ``kind`` (``REFERENCE_KINDS``), placed:

        - ``shadow_original``: D_f plus ``shadow_half(i, half_seed)``; ``shadow_retrain``: that half alone;
        - ``fq_retrain``: D_r from the i-th initialisation and batch order of forgetting quality;
        - ``klom_original``: the training split, as the original is trained, from KLOM's i-th seed.

        ``twin``: a retrain (shadow or FQ) independent of the one the reference side compares with — what a
        method that needs the oracle gets in a reference run, so it is never compared with itself."""
        ctx = self.ctx
        if kind in ("shadow_original", "shadow_retrain"):
            if half_seed is None:
                raise ValueError(f"{kind} needs the half_seed that draws its half of D_r")
            half = self.shadow_half(i, half_seed)
            init = shuffle = reference_seed(ctx.cfg.seed, SHADOW_SEED_OFFSET, i)
            spec = {**ctx.retrain_spec(), "shadow": i, "half_seed": half_seed}
            if kind == "shadow_original":
                idx = np.concatenate([np.asarray(ctx.split.forget_train), half])
            elif twin:
                spec["twin"] = 1
                idx, init, shuffle = half, init + SHADOW_TWIN_INIT, init + SHADOW_TWIN_INIT
            else:
                idx, init = half, init + SHADOW_RETRAIN_INIT
        elif kind == "fq_retrain":
            init = reference_seed(ctx.cfg.seed, FQ_SEED_OFFSET, i)
            if twin:
                init += FQ_TWIN_INIT
            shuffle, idx = init, np.asarray(ctx.split.retain_train)
            spec = {**ctx.retrain_spec(), ("fq_twin" if twin else "fq_run"): i}
        elif kind == "klom_original" and not twin:
            init = shuffle = reference_seed(ctx.cfg.seed, KLOM_SEED_OFFSET, i)
            idx, spec = np.asarray(ctx.split.train_idx), {**ctx.spec(), "klom_run": i}
        else:
            raise ValueError(f"no reference model {kind!r}{' twin' if twin else ''}; the kinds are "
                             f"{', '.join(REFERENCE_KINDS)}")
        model, _, _ = self.cache.get_or_train(kind, spec, lambda: ctx.build_model(init),
                                              self._trainer(ctx.train_subset(idx), kind, shuffle),
                                              resumable=True)
        return ctx.placed(model)

    def _trainer(self, subset, job: str, shuffle_seed: int | None = None):
        ctx, recipe = self.ctx, self.ctx.cfg.train
        shuffle_seed = int(ctx.cfg.seed) if shuffle_seed is None else int(shuffle_seed)

        def train(model, resume=None):
            model.to(ctx.device)
            if ctx.channels_last:
                model.to(memory_format=torch.channels_last)
            batches = subset.batches(recipe.batch_size, shuffle=True, seed=shuffle_seed,
                                     augment=bool(recipe.augment))
            # the precision its cache key records; reference models always update their normalisation
            # statistics, even when an unlearning step that freezes them trains them lazily
            curve = fit(model, batches, cross_entropy(recipe.label_smoothing), instantiate(recipe.optimizer),
                        ctx.device, epochs=recipe.epochs, schedule=recipe.schedule,
                        logger=self.logger.lightning(job),
                        progress=STAGES.get(job, job) if ctx.cfg.progress else False, resume=resume,
                        precision=ctx.precision, norm_stats="update")
            return {"curve": curve, "job": job}
        return train

    # -- outputs of cached models ----------------------------------------------------------------------
    def logits(self, model, meta: dict) -> dict[str, np.ndarray]:
        """Logits of a *cached* model on this run's splits, computed once per (checkpoint, split) and kept
        beside the checkpoint: every method of a sweep shares the original's and the oracle's outputs."""
        subsets = self.ctx.subsets
        path = self._outputs_path(meta, ".npz")
        out = read_verified_npz(path) if path.exists() else None  # its content hash checked, else None
        if out is not None and set(out) == set(subsets) and \
                all(len(out[k]) == len(v) for k, v in subsets.items()):
            return out
        out = outputs.collect(model, subsets, self.ctx.cfg.eval.batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_verified_npz(path, out, "cached logits")
        return out

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

    def _outputs_path(self, meta: dict, suffix: str) -> Path:
        split = json.dumps(asdict(self.ctx.split), sort_keys=True).encode()
        split_hash = hashlib.sha256(split).hexdigest()[:16]
        return self.cache.root / "logits" / f"{meta['sha256'][:20]}-{split_hash}-e{OUTPUTS_VERSION}{suffix}"
