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
import threading
import zipfile
from dataclasses import asdict
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unlearn_bench import eval_suite, evaluation, metrics
from unlearn_bench.batches import Normalizer
from unlearn_bench.cache import ModelCache, atomic_write_bytes, spec_key
from unlearn_bench.errors import Diverged
from unlearn_bench.methods.base import Method, Subset, UnlearnData
from unlearn_bench.reference_models import ReferenceModels
from unlearn_bench.splits import Split, make_split
from unlearn_bench.store import env_info, read_complete, write_json
from unlearn_bench.training import check_finite, cross_entropy, fit
from unlearn_bench.validate import validate_config

log = logging.getLogger("unlearn_bench")
RETRAIN_SEED_OFFSET = 1_000_003  # the oracle's initialisation is independent of the original's
RANDOM_SEED_OFFSET = 4_000_037  # ZRF's randomly initialised model


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
    for volatile in ("cache_dir", "logger", "progress", "runs_dir"):
        c.pop(volatile, None)
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


def setup_hash(cfg: DictConfig) -> str:
    """Everything but the method, the seed and the forget classes: runs that share it may be compared,
    paired and averaged (the report never pools runs of different setups)."""
    c = plain_config(cfg)
    for k in ("cache_dir", "logger", "progress", "runs_dir", "method", "seed", "name", "device"):
        c.pop(k, None)
    c.get("forget", {}).pop("classes", None)
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:8]


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
                "seed": int(self.cfg.seed), "unseen": plain_config(self.cfg)["forget"]["unseen"],
                "precision": "bf16-mixed" if self.device.startswith("cuda") else "32-true"}

    def _trainer(self, subset: Subset, job: str, logger, shuffle_seed: int | None = None):
        recipe = self.cfg.train
        shuffle_seed = int(self.cfg.seed) if shuffle_seed is None else int(shuffle_seed)

        def train(model):
            model.to(self.device)
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
            batches = subset.batches(recipe.batch_size, shuffle=True, seed=shuffle_seed,
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
        return self.placed(model), meta, hit

    def placed(self, model):
        """On the device, in eval mode, channels_last for conv models on GPU (also after a cache load)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model.eval()

    def logits(self, model, meta: dict) -> dict[str, np.ndarray]:
        """Logits of a *cached* model on this run's splits, computed once per (checkpoint, split) and kept
        beside the checkpoint: every method of a sweep shares the original's and the oracle's outputs."""
        split_hash = hashlib.sha256(json.dumps(asdict(self.split), sort_keys=True).encode()).hexdigest()[:16]
        path = self.cache.root / "logits" / f"{meta['sha256'][:20]}-{split_hash}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    out = {k: z[k] for k in z.files}
                if set(out) == set(self.subsets) and all(len(out[k]) == len(v) for k, v in self.subsets.items()):
                    return out
            except (OSError, ValueError, zipfile.BadZipFile):
                log.warning("cached logits %s unreadable; recomputing", path.name)
        out = evaluation.collect(model, self.subsets, self.cfg.eval.batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)

        def save(p):
            with open(p, "wb") as f:
                np.savez(f, **out)
        atomic_write_bytes(path, save)
        return out

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
            self._trainer(self.subsets["retain_train"], "retrain", logger))
        return self.placed(model), {**meta, "cache_hit": hit}


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
    """Run one (data, model, method, forget set, seed) configuration; returns metrics.json's content."""
    run_dir = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    done = read_complete(run_dir)
    if done is not None:
        try:
            same = done.get("config_hash") == config_hash(cfg)
        except Exception:  # a broken config is reported by validation below, in one line
            same = False
        if same:
            log.info("skipping %s: a complete metrics.json for this config exists", run_dir)
            return done

    ctx = validate_config(cfg)
    chash = config_hash(cfg)
    L.seed_everything(int(cfg.seed), workers=False, verbose=False)

    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", "predictions.npz"):  # a finished run of a *different* config
        (run_dir / stale).unlink(missing_ok=True)
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
        _oracle=(lambda: ctx.retrain(logger)) if ctx.method.needs_oracle else None,
        logger=logger.lightning("unlearn"), progress=cfg.progress)

    result = {"status": "ok", "method": ctx.method_label, "data": ctx.labels.get("data", ctx.data.name),
              "model": ctx.labels.get("model", ""), "forget": "-".join(map(str, ctx.split.forget_classes)),
              "seed": int(cfg.seed), "regime": ctx.method.regime.value, "name": cfg.name,
              "uses_unseen_retain": bool(ctx.method.needs_unseen_retain), "uses_oracle": ctx.method.needs_oracle,
              "config_hash": chash, "setup": setup_hash(cfg), "original_cache_hit": hit, "original_train_s": meta.get("train_s")}
    cost: dict = {}
    torch.manual_seed(int(cfg.seed))
    working_copy = copy.deepcopy(original)  # not part of the method's cost
    try:
        with measure(ctx.device, cost, "unlearn"):
            unlearned = ctx.method.unlearn(working_copy, data)
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
    logits_o = ctx.logits(original, meta)
    logits_u = evaluation.collect(unlearned, ctx.subsets, cfg.eval.batch_size)
    result.update(evaluation.accuracies(logits_u, labels))
    result.update(evaluation.accuracies(logits_o, labels, prefix="original/"))
    evals, arrays = _evaluate(ctx, run_dir, logger, original, unlearned, logits_o, logits_u, labels)
    result.update(evals)
    result["cost/eval_s"] = time.perf_counter() - t0  # everything above: collection, attacks, oracle, references

    np.savez_compressed(run_dir / "predictions.npz",
                        **{f"logits_{k}": v for k, v in logits_u.items()},
                        **{f"original_logits_{k}": v for k, v in logits_o.items()},
                        **{f"labels_{k}": v for k, v in labels.items()}, **arrays)
    ctx.method.write_artifacts(run_dir, original, unlearned, data)
    write_json(run_dir / "metrics.json", result)
    logger.log_summary(result)
    return result


def _evaluate(ctx: Context, run_dir: Path, logger, original, unlearned, logits_o, logits_u, labels):
    """Every metric family beyond accuracies (eval_suite); writes per_class.csv and roc.csv. Returns the
    metrics and the retrain oracle's logits (for predictions.npz) when the oracle was used."""
    ev, seed = ctx.cfg.eval, int(ctx.cfg.eval.seed)
    mia_o = eval_suite.population_mias(logits_o, labels, logits_o, seed)
    same = all(np.array_equal(logits_u[k], logits_o[k]) for k in logits_o)  # e.g. `none`: attacks are identical
    out = dict(mia_o) if same else eval_suite.population_mias(logits_u, labels, logits_o, seed)
    out.update({f"original/{k}": v for k, v in mia_o.items()})
    random_model = ctx.build_model(int(ctx.cfg.seed) + RANDOM_SEED_OFFSET).to(ctx.device)
    forget_random = evaluation.predict_logits(random_model, ctx.subsets["forget_train"], ev.batch_size)
    out["zrf"] = metrics.zrf(logits_u["forget_train"], forget_random)
    models = {"original": logits_o, "unlearned": logits_u}

    retrain = logits_r = None
    # eval.retrain=true makes every row carry oracle metrics; otherwise they appear when the oracle is cached
    if ev.retrain or ev.shadows or ev.fq_runs or ctx.retrain_cached():
        retrain, rmeta = ctx.retrain(logger)
        logits_r = models["retrain"] = ctx.logits(retrain, rmeta)
        out["eval/retrain_cache_hit"], out["eval/retrain_train_s"] = rmeta["cache_hit"], rmeta.get("train_s")
        out.update(evaluation.accuracies(logits_r, labels, prefix="retrain/"))
        mia_r = eval_suite.population_mias(logits_r, labels, logits_o, seed)
        out.update({f"retrain/{k}": v for k, v in mia_r.items()})
        out["retrain/zrf"] = metrics.zrf(logits_r["forget_train"], forget_random)
        out.update(eval_suite.oracle_distances(logits_u, logits_r, labels, out, mia_r))

    if ev.relearn:
        target = float(ev.relearn_target) * evaluation.accuracy(logits_o["forget_test"], labels["forget_test"])
        out.update(evaluation.relearn(ctx.subsets, unlearned, retrain, target, int(ev.relearn_size),
                                      float(ev.relearn_lr), int(ev.relearn_max_steps), seed))

    refs = ReferenceModels(ctx, logger)
    ulira = None
    if ev.shadows:
        out["eval/shadows"] = int(ev.shadows)
        pair = refs.shadows(int(ev.shadows), seed)
        if pair is not None:
            ulira = (refs.phi(unlearned), refs.phi(retrain))
            out.update(eval_suite.ulira_metrics(*ulira, *pair, fix_variance=bool(ev.ulira_fix_variance)))
            ulira = metrics.ulira_scores(np.stack(ulira), *pair, fix_variance=bool(ev.ulira_fix_variance))
    if ev.fq_runs:
        out["eval/fq_runs"] = int(ev.fq_runs)
        fq = refs.fq_ensembles(int(ev.fq_runs), original, retrain)
        if fq is not None:
            out.update(eval_suite.fq_metrics(fq["u"], fq["r"], fq["acc_u"], fq["acc_r"]))

    per_class = eval_suite.per_class(models, labels, ctx.data.num_classes)
    per_class.to_csv(run_dir / "per_class.csv", index=False)
    scores = eval_suite.attack_rocs(logits_u, labels)
    if ulira is not None:  # U-LiRA's likelihood ratio: unlearned target (member) vs retrain target
        scores["ulira"] = (ulira[0], ulira[1])
    roc = eval_suite.strongest_roc(scores)
    roc.to_csv(run_dir / "roc.csv", index=False)
    logger.log_tables(per_class, roc)
    arrays = {f"retrain_logits_{k}": v for k, v in (logits_r or {}).items()}
    return out, arrays


def _hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()
