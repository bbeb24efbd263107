"""``run(cfg) -> dict``: one unlearning run, end to end. The Hydra entry point is a thin wrapper.

Order: validate everything into a CPU-only ``Setup`` (no file written) -> lock the run directory
(``rundir``: one writer; a finished run of another configuration is refused or, with overwrite=true, kept
aside) -> write config/split/env -> the ``Context`` on the device -> original model (``ModelStore``, cached)
-> unlearn (timed alone) -> collect outputs -> metrics -> predictions.npz -> metrics.json (last, atomic).
In a folder that exists when the run starts (Hydra makes it), ``failed.json`` says the attempt is
unfinished until it ends: an error or a signal rewrites it with the reason, and metrics.json, once written,
replaces it (``rundir``), so a killed run's folder still says what happened.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unlearn_bench.config import plain_config
from unlearn_bench.errors import DiskFull, Diverged
from unlearn_bench.eval import outputs as evaluation
from unlearn_bench.eval.evaluate import evaluate
from unlearn_bench.run.cache import atomic_write_bytes, atomic_write_text, is_disk_full
from unlearn_bench.run.context import Context, Setup
from unlearn_bench.run.identity import config_hash, method_seed, setup_hash
from unlearn_bench.run.measure import measure
from unlearn_bench.run.models import ModelStore
from unlearn_bench.run.rundir import (
    claim,
    clear_failure,
    failures_recorded,
    mark_started,
    run_lock,
    take_overwrite,
)
from unlearn_bench.run.store import env_info, read_complete, write_json
from unlearn_bench.run.validate import validate_config
from unlearn_bench.train.loop import check_finite

log = logging.getLogger("unlearn_bench")


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
    """Run one (data, model, method, forget set, seed) configuration; returns metrics.json's content."""
    run_dir = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    mark_started(run_dir)  # in a folder Hydra made: a run killed while it validates leaves a record too
    with failures_recorded(run_dir):  # ... and so does one that fails validation
        cfg, overwrite = take_overwrite(cfg)
        done = _finished(run_dir, cfg)
        if done is not None:
            return done
        setup = validate_config(cfg)
        chash = config_hash(cfg)
    L.seed_everything(int(cfg.seed), workers=False, verbose=False)
    # a second process on this folder is refused, not interleaved; failed.json is written under the lock
    with run_lock(run_dir), failures_recorded(run_dir, chash, locked=True):
        done = _finished(run_dir, cfg)  # it may have finished while this one validated
        if done is not None:
            return done
        try:
            return _write_run(setup, run_dir, chash, overwrite)
        except OSError as e:  # a full disk under a file written without atomic_write_bytes
            if is_disk_full(e):
                raise DiskFull(Path(e.filename).parent if e.filename else run_dir, "the run's files") from e
            raise


def _finished(run_dir: Path, cfg: DictConfig) -> dict | None:
    """metrics.json of this very configuration in ``run_dir`` (the run is skipped), else None."""
    done = read_complete(run_dir)
    if done is None:
        return None
    try:
        same = done.get("config_hash") == config_hash(cfg)
    except Exception:  # a broken config is reported by validation, in one line
        same = False
    if same:
        log.info("skipping %s: a complete metrics.json for this config exists", run_dir)
        return done
    return None


def _write_run(setup: Setup, run_dir: Path, chash: str, overwrite: bool) -> dict:
    cfg = setup.cfg
    done = read_complete(run_dir)
    if done is not None:  # a finished run of another configuration
        claim(run_dir, done, plain_config(cfg), overwrite)
    (run_dir / "metrics.json").unlink(missing_ok=True)  # a damaged one, not a result
    mark_started(run_dir, chash, locked=True)  # "unfinished" until this attempt ends one way or another
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plain_config(cfg))),
                      "the run's config.yaml")
    setup.split.save(run_dir / "split.json")
    write_json(run_dir / "env.json", env_info(setup.device))

    logger = instantiate(cfg.logger)
    tags = [setup.method_label, setup.labels.get("data", ""), setup.labels.get("model", "")]
    logger.start(run_dir, plain_config(cfg), f"{setup.method_label}-{run_dir.name}", cfg.name, tags,
                 task=_task(setup))
    try:
        return _run(Context.build(setup), run_dir, chash, logger)
    finally:
        logger.finish()


def _run(ctx: Context, run_dir: Path, chash: str, logger) -> dict:
    cfg, method = ctx.cfg, ctx.method
    store = ModelStore(ctx, logger)
    original, meta, hit = store.original()
    mseed = method_seed(cfg)  # the method's draws; cfg.seed made the original and the oracle
    data = ctx.unlearn_data(method, ctx.subsets["retain_train"], store.oracle, mseed,
                            logger.lightning("unlearn"), bool(cfg.progress))

    result = {
        "status": "ok",
        "method": ctx.method_label,
        **_task(ctx),  # data, model, forget, seed
        "method_seed": mseed,
        "regime": method.regime.value,
        "name": cfg.name,
        "uses_unseen_retain": bool(method.needs_unseen_retain),
        "uses_oracle": method.needs_oracle,
        "config_hash": chash,
        "setup": setup_hash(cfg, ctx.data.fingerprint),
        "original_cache_hit": hit,
        "original_train_s": meta.get("train_s"),
    }
    cost: dict = {}
    torch.manual_seed(mseed)
    working_copy = copy.deepcopy(original)  # not part of the method's cost
    try:
        with measure(ctx.device, cost, "unlearn"):  # data.fit: the run's precision and norm-stats mode
            unlearned = method.unlearn(working_copy, data)
        check_finite(unlearned)
    except Diverged as e:
        result.update(status="failed", reason=str(e), **{f"cost/{k}": v for k, v in cost.items()})
        write_json(run_dir / "metrics.json", result)
        clear_failure(run_dir)  # this metrics.json is the failure's record
        logger.log_summary(result)
        log.warning("%s failed: %s", ctx.method_label, e)
        return result
    result.update({f"cost/{k}": v for k, v in cost.items()})
    result.update(getattr(method, "extra_metrics", {}))

    t0 = time.perf_counter()
    labels = {k: s.y.cpu().numpy() for k, s in ctx.subsets.items()}
    logits_o = store.logits(original, meta)
    logits_u = evaluation.collect(unlearned, ctx.subsets, cfg.eval.batch_size)
    evals, arrays = evaluate(ctx, store, run_dir, logger, original, meta, unlearned, logits_o, logits_u,
                             labels)  # the families conf/eval lists, accuracies first
    result.update(evals)
    # everything above: collection, attacks, oracle, reference models
    result["cost/eval_s"] = time.perf_counter() - t0

    predictions = {**{f"logits_{k}": v for k, v in logits_u.items()},
                   **{f"original_logits_{k}": v for k, v in logits_o.items()},
                   **{f"labels_{k}": v for k, v in labels.items()}, **arrays}
    atomic_write_bytes(run_dir / "predictions.npz", lambda p: _savez(p, predictions), "predictions.npz")
    method.write_artifacts(run_dir, original, unlearned, data)
    write_json(run_dir / "metrics.json", result)
    clear_failure(run_dir)
    logger.log_summary(result)
    return result


def _task(setup: Setup) -> dict:
    """What the report groups runs by; the wandb runs of shared models (original, oracle) are named by it."""
    return {"data": setup.labels.get("data", setup.data.name), "model": setup.labels.get("model", ""),
            "forget": "-".join(map(str, setup.split.forget_classes)), "seed": int(setup.cfg.seed)}


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a temporary name
        np.savez_compressed(f, **arrays)


def _hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()


def finished(run_dir: str | Path, cfg: DictConfig) -> dict | None:
    """metrics.json of a finished run of exactly ``cfg`` in ``run_dir``, else None: the test a run applies
    before it starts, for launchers that drop finished runs before submitting them."""
    cfg, _ = take_overwrite(cfg)
    return _finished(Path(run_dir), cfg)
