"""Checks run before any training starts. Each failure is a ``ConfigError`` whose message is one line:
what is wrong, then how to fix it.

``validate_config(cfg)`` is the whole path: ``check_config`` (types and ranges; nothing built), then the
run's ``Setup`` (data loaded on the CPU, split made, model and method instantiated; nothing trained, nothing
on an accelerator), then ``validate_run`` (checks that need the data and the model, including the method's
own ``validate``; it relies on ``check_config`` having passed).
"""

from __future__ import annotations

import logging
import math
import re

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unlearn_bench.config import plain_config
from unlearn_bench.data.check import check_sizes
from unlearn_bench.data.files import TooFewToSplit
from unlearn_bench.errors import ConfigError, UnlearnBenchError, one_line
from unlearn_bench.eval.family import check as check_families
from unlearn_bench.methods.hparams import check_method_config

MAX_SEED = 2**32 - 1  # Lightning's seed_everything replaces larger seeds by a random one, silently
DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(value, key: str, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in ``low..high``, else a one-line ConfigError naming ``key``."""
    span = f">= {low}" if high is None else f"in {low}..{high}"
    _check(_is_int(value), f"{key}={value!r} is not an integer; fix: set {key} to an integer {span}")
    _check(value >= low and (high is None or value <= high), f"{key}={value} must be {span}; fix: set {key} "
                                                              f"to an integer {span}")
    return value


def positive(value, key: str) -> float:
    _check(_is_number(value) and value > 0, f"{key}={value!r} must be a positive number; fix: set e.g. "
                                            f"{key}=0.001")
    return float(value)


def _plain(cfg) -> dict:
    """The run configuration, resolved (an unresolvable interpolation is a config error, not a crash)."""
    try:
        return plain_config(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"the configuration does not resolve ({one_line(e, 200)}); fix: correct that "
                          f"interpolation or override") from e


def validate_recipe(train) -> None:
    integer(train["epochs"], "train.epochs")
    integer(train["batch_size"], "train.batch_size")
    optimizer = train["optimizer"]
    _check(isinstance(optimizer, dict) or OmegaConf.is_dict(optimizer),
           f"train.optimizer={optimizer!r} is not an optimizer node; fix: pick train=adam or train=sgd")
    lr = optimizer.get("lr")
    _check(lr is None or (_is_number(lr) and lr > 0),
           f"train.optimizer.lr={lr!r} must be > 0; fix: set a positive learning rate, e.g. 0.001")
    ls = train["label_smoothing"]
    _check(_is_number(ls) and 0 <= ls < 1,
           f"train.label_smoothing={ls!r} must be in [0, 1); fix: e.g. train.label_smoothing=0.1")
    _check(train["schedule"] in ("none", "cosine"),
           f"train.schedule={train['schedule']!r} is not one of none, cosine; fix: set train.schedule=none")
    _check(isinstance(train.get("augment", False), bool),
           f"train.augment={train.get('augment')!r} is not true/false; fix: set train.augment=false")


def check_eval(ev: dict) -> None:
    """The evaluation settings: switches are true/false, counts are integers in range."""
    for k in ("retrain", "relearn", "ulira_fix_variance", "klom"):
        _check(isinstance(ev.get(k, False), bool), f"eval.{k}={ev.get(k)!r} is not true or false; fix: set "
                                                   f"eval.{k}=true or eval.{k}=false")
    integer(ev["seed"], "eval.seed", 0, MAX_SEED)
    integer(ev["relearn_size"], "eval.relearn_size")
    integer(ev["relearn_max_steps"], "eval.relearn_max_steps")
    positive(ev["relearn_lr"], "eval.relearn_lr")
    target = ev["relearn_target"]
    _check(_is_number(target) and 0 < target <= 1, f"eval.relearn_target={target!r} must be in (0, 1]; fix: "
                                                   f"e.g. eval.relearn_target=0.95")
    shadows = integer(ev["shadows"], "eval.shadows", 0)
    _check(shadows == 0 or shadows >= 2,
           f"eval.shadows={shadows}: U-LiRA needs at least 2 shadow pairs; fix: set eval.shadows=0 (off) "
           f"or >= 2 (4 by default in eval=full)")
    runs = integer(ev["fq_runs"], "eval.fq_runs", 0)
    _check(runs == 0 or runs >= 3,
           f"eval.fq_runs={runs}: forgetting quality needs at least 3 runs per side; fix: set eval.fq_runs=0 "
           f"(off) or >= 3")
    check_families(ev)  # a misspelt family fails before anything trains


def check_config(cfg) -> None:
    """The generic checks that need nothing built: seed, device, forget set, recipe, eval, method."""
    c = _plain(cfg)
    integer(c["seed"], "seed", 0, MAX_SEED)
    device = c["device"]
    _check(isinstance(device, str) and DEVICE.fullmatch(device) is not None,
           f"device={device!r} is not auto, cpu, cuda or cuda:N; fix: set device=auto")
    _check(not device.startswith("cuda") or torch.cuda.is_available(),
           f"device={device} but no CUDA device is visible; fix: set device=auto or device=cpu")
    _check(str(c["precision"]) in ("auto", "32", "bf16"),
           f"precision={c['precision']!r} is not auto, 32 or bf16; fix: set precision=auto")
    from unlearn_bench.train.loop import NORM_STATS
    _check(c.get("norm_stats", "update") in NORM_STATS,
           f"norm_stats={c.get('norm_stats')!r} is not update or frozen; fix: set norm_stats=update")
    _check(c["channels_last"] in ("auto", True, False),
           f"channels_last={c['channels_last']!r} is not auto, true or false; fix: set channels_last=auto")
    classes = c["forget"]["classes"]
    _check(isinstance(classes, list),
           f"forget.classes={classes!r} is not a list; fix: write forget.classes=[3]")
    _check(len(classes) > 0, "forget.classes is empty; fix: name at least one class, e.g. forget.classes=[3]")
    bad = [x for x in classes if not _is_int(x)]
    if bad:
        raise ConfigError(f"forget.classes holds {bad[0]!r}, not a class index; fix: write integer class "
                          f"indices, e.g. forget.classes=[3]")
    twice = sorted({x for x in classes if classes.count(x) > 1})
    _check(not twice, f"forget.classes lists class {twice[0] if twice else ''} more than once; fix: name "
                      f"each class once, e.g. forget.classes={sorted(set(classes))}")
    unseen = c["forget"]["unseen"]
    _check(unseen["source"] in ("holdout", "test"),
           f"forget.unseen.source={unseen['source']!r} is not holdout or test; fix: set "
           f"forget.unseen.source=holdout")
    integer(unseen["per_class"], "forget.unseen.per_class")
    validate_recipe(c["train"])
    if c["eval"]["batch_size"] is not None:  # null: the device's default (eval.outputs.eval_batch_size)
        integer(c["eval"]["batch_size"], "eval.batch_size")
    check_eval(c["eval"])
    data = c["data"]
    for k in ("train_limit", "test_limit"):  # a stratified subset's size, or null for the whole split
        if data.get(k) is not None:
            integer(data[k], f"data.{k}")
    if "test_fraction" in data:
        f = data["test_fraction"]
        _check(_is_number(f) and 0 < f < 1, f"data.test_fraction={f!r} must be in (0, 1); fix: e.g. "
                                            f"data.test_fraction=0.25")
    check_method_config(c["method"])


def validate_run(setup) -> None:
    """The checks that need the data and the model, of a ``Setup`` whose config passed ``check_config``
    (forget classes a non-empty list of distinct integers, a valid recipe)."""
    cfg, data, split = setup.cfg, setup.data, setup.split
    k = data.num_classes
    classes = list(cfg.forget.classes)
    bad = [c for c in classes if not 0 <= c < k]
    _check(not bad, f"forget class(es) {bad} out of range for {data.name} (classes 0..{k - 1}); "
                    f"fix: pick forget.classes within 0..{k - 1}")
    _check(len(set(classes)) < k,
           f"forget.classes covers all {k} classes; fix: leave at least one class to retain")
    counts = data.class_counts() if cfg.forget.unseen.source == "holdout" else \
        torch.bincount(data.test_y, minlength=k).numpy()
    check_sizes(cfg, setup.method, counts, _data_label(cfg, data.name), data.drawn_test_fraction)
    _check(len(split.forget_train) > 0, f"no training image of class(es) {classes} in {data.name}; fix: pick "
                                        f"forget classes present in the training split")
    if len(split.forget_test) == 0:  # a user's data can lack them; the run is still meaningful
        logging.getLogger("unlearn_bench").warning(
            "no test image of forget class(es) %s in %s: acc/forget_test, the loss attack, Fs and relearn "
            "will be empty", classes, data.name)
    label = setup.labels.get("model", "?")
    try:  # building checks model.* values, the forward pass checks the input shape
        model = setup.build_model(int(cfg.seed)).eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *data.in_shape))
    except (RuntimeError, ValueError, TypeError) as e:
        raise ConfigError(f"model {label} does not fit {data.name} images {tuple(data.in_shape)} "
                          f"({one_line(e, 160)}); fix: choose a model for this input size or correct the "
                          f"model.* overrides") from e
    _check(tuple(out.shape) == (2, k), f"model outputs {tuple(out.shape[1:])} logits but {data.name} has {k} "
                                       f"classes; fix: do not override the model's num_classes")
    setup.method.validate(model, {"num_classes": k, "forget_classes": split.forget_classes,
                                "unseen_size": len(split.unseen_of(split.forget_classes)),
                                "in_shape": data.in_shape})


def _data_label(cfg, name: str) -> str:
    return f"data.path={cfg.data.path}" if cfg.data.get("path") else name


def build_setup(cfg):
    """The run's ``Setup`` (data, split, model factory, method), with construction failures that come from
    the configuration (a bad argument to a ``_target_``, a value sklearn rejects) as one-line errors. Data
    too few to split off a test set are reported with what the unseen pool and the method would need."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from unlearn_bench.run.context import Setup

    try:
        return Setup.from_config(cfg)
    except TooFewToSplit as e:
        try:
            method = instantiate(cfg.method)
        except Exception:  # noqa: BLE001 -- a method that cannot be built is reported when the data load
            method = None
        check_sizes(cfg, method, e.counts, _data_label(cfg, str(cfg.data.get("name", "the data"))),
                    split_error=e)
        raise
    except UnlearnBenchError:
        raise
    except (InstantiationException, ValueError, TypeError) as e:
        raise ConfigError(f"the configuration cannot be built ({type(e).__name__}: {one_line(e, 200)}); "
                          f"fix: correct the override of the node named there") from e


def validate_config(cfg):
    """Every check that runs before a run writes a file or trains; returns the validated ``Setup`` (the
    run places it on its device with ``Context.build``)."""
    check_config(cfg)
    setup = build_setup(cfg)
    validate_run(setup)
    return setup
