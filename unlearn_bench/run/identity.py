"""A run's identity: every hash, version and seed offset that names results and cached models.

- ``config_hash``: a run's whole configuration (less where files go and how progress shows) and
  ``RESULTS_VERSION``; a run folder whose metrics.json carries it is complete.
- ``setup_hash``: what runs must share to be compared, paired and averaged.
- ``spec_key``: a cached model's name, from the spec that trained it and ``CACHE_VERSION``.
- Seed offsets: each kind of model trained for a run gets an initialisation independent of the others'.

Hashes see the data loaders under the module paths they had when results were first written
(``HASHED_TARGETS``): moving a loader does not make every finished run and cached model look new.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig

from unlearn_bench.config import plain_config

# Bumped when a change alters what an unchanged configuration produces (a metric's definition, a method's
# behaviour): a resumed sweep then recomputes its runs instead of mixing results of two versions.
# 2: Fr/Fs as the LRA-NPP authors compute them; LRA-NPP keeps the bias, breaks ties by first sight, ViT edits
# the head only; JiT in eval mode with constant neighbours; GKT gates its generator step.
# 3: the entropy attack's non-members are the whole test split (SSD); KLOM under eval=full.
# 4: the baselines run as their authors' code runs them (docs/baselines.md); population attacks are means over
# eval.mia_draws draws
RESULTS_VERSION = 4
CACHE_VERSION = 2  # bump when training code changes what a spec produces
# Bump when the way outputs are computed changes (batching, layout, precision): cached logits of the original
# and the oracle are keyed by it, so they always come from the same path as the unlearned model's.
OUTPUTS_VERSION = 2

RETRAIN_SEED_OFFSET = 1_000_003  # the oracle's initialisation is independent of the original's
SHADOW_SEED_OFFSET = 2_000_003  # U-LiRA's shadow pairs
FQ_SEED_OFFSET = 3_000_017  # forgetting quality's N retrains and their twins
RANDOM_SEED_OFFSET = 4_000_037  # ZRF's randomly initialised model; also KLOM's N originals (the same numbers
KLOM_SEED_OFFSET = RANDOM_SEED_OFFSET  # named their cached models: kept so those entries stay found)
REFERENCE_STRIDE = 7919  # the i-th model of an ensemble: base + offset + stride * i


def reference_seed(seed: int, offset: int, i: int) -> int:
    """Initialisation seed of the i-th reference model of one kind (shadow, FQ retrain, KLOM original)."""
    return int(seed) + offset + REFERENCE_STRIDE * i


# A loader moved since results were first written -> the name hashes keep seeing
HASHED_TARGETS = {
    "unlearn_bench.data.files.ArrayFile": "unlearn_bench.data_files.ArrayFile",
    "unlearn_bench.data.files.ImageFolder": "unlearn_bench.data_files.ImageFolder",
}


# The metric families every eval level ran before conf/eval listed them (``eval.families``): an eval node
# listing exactly these hashes as it did without the list, so finished runs and sweeps stay recognised; any
# other list changes the results, hence the hash.
LEGACY_FAMILIES = ("accuracy", "population", "zrf", "oracle", "relearn", "ulira", "fq", "klom", "per_class",
                   "roc")


def hashed_eval(ev: dict) -> dict:
    """The eval node as hashes see it (``LEGACY_FAMILIES``)."""
    if "families" in ev and (ev["families"] is None or list(ev["families"]) == list(LEGACY_FAMILIES)):
        return {k: v for k, v in ev.items() if k != "families"}
    return ev


def hashed_data(data: dict) -> dict:
    """The data node as hashes see it (``HASHED_TARGETS``)."""
    target = data.get("_target_")
    return {**data, "_target_": HASHED_TARGETS[target]} if target in HASHED_TARGETS else data


def _digest(obj, n: int) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


# Keys that change where files go, how progress shows or what a sweeper reads, never a run's results
UNHASHED = ("cache_dir", "logger", "progress", "runs_dir", "optimized_metric",
            "optimized_metric_failed_value")


def config_hash(cfg: DictConfig) -> str:
    """The identity of a run's results (see the module docstring)."""
    from unlearn_bench.data.files import source_stamp
    c = plain_config(cfg)
    c["_results_version"] = RESULTS_VERSION
    stamp = source_stamp(c.get("data", {}))  # a user's data file replaced since: the run is not complete
    if stamp is not None:
        c["_data_stamp"] = stamp
    if "data" in c:
        c["data"] = hashed_data(c["data"])
    if isinstance(c.get("eval"), dict):
        c["eval"] = hashed_eval(c["eval"])
    for key in UNHASHED:
        c.pop(key, None)
    if c.get("method_seed") == c.get("seed"):  # the default: a run finished before method_seed keeps its hash
        c.pop("method_seed", None)
    return _digest(c, 16)


def setup_hash(cfg: DictConfig, data_fingerprint: str | None = None) -> str:
    """Everything but the method, the seed and the forget classes: runs that share it may be compared,
    paired and averaged (the report never pools runs of different setups). A user's own data enter by
    content (``data_fingerprint``), not by path."""
    c = plain_config(cfg)
    for k in (*UNHASHED, "method", "seed", "method_seed", "name", "device", "channels_last"):
        c.pop(k, None)
    c.get("forget", {}).pop("classes", None)
    c["data"] = hashed_data(c["data"])
    if isinstance(c.get("eval"), dict):
        c["eval"] = hashed_eval(c["eval"])
    if data_fingerprint:
        c["data"].pop("path", None)
        c["data"]["fingerprint"] = data_fingerprint
    return _digest(c, 8)


def spec_key(spec: dict) -> str:
    """A cached model's name: the spec that trains it (``data`` seen as ``hashed_data``)."""
    if isinstance(spec.get("data"), dict):
        spec = {**spec, "data": hashed_data(spec["data"])}
    return _digest({"v": CACHE_VERSION, **spec}, 20)


def method_seed(cfg: DictConfig) -> int:
    """The seed of the method's own randomness (its draws, shuffles, random labels); ``seed`` trains the
    original and the oracle. A config written before ``method_seed`` existed uses ``seed`` for both."""
    value = cfg.get("method_seed")
    return int(cfg.seed if value is None else value)
