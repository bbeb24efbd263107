"""Checks run before any training starts. Each failure is a ``ConfigError`` whose message is one line:
what is wrong, then how to fix it."""

from __future__ import annotations

import torch

from unlearn_bench.errors import ConfigError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate_recipe(train) -> None:
    _check(int(train.epochs) >= 1, f"train.epochs={train.epochs} must be >= 1; fix: set train.epochs=1 or more")
    _check(int(train.batch_size) >= 1,
           f"train.batch_size={train.batch_size} must be >= 1; fix: set a positive batch size")
    lr = train.optimizer.get("lr")
    _check(lr is None or float(lr) > 0, f"train.optimizer.lr={lr} must be > 0; fix: set a positive learning rate")
    _check(0 <= float(train.label_smoothing) < 1, "train.label_smoothing must be in [0, 1); fix: e.g. 0.1")
    _check(train.schedule in ("none", "cosine"), f"train.schedule={train.schedule!r} is not one of none, cosine")


def validate_run(ctx) -> None:
    cfg, data, split = ctx.cfg, ctx.data, ctx.split
    k = data.num_classes
    classes = list(cfg.forget.classes)
    _check(len(classes) > 0, "forget.classes is empty; fix: name at least one class, e.g. forget.classes=[3]")
    bad = [c for c in classes if not isinstance(c, int) or not 0 <= c < k]
    _check(not bad, f"forget class(es) {bad} out of range for {data.name} (classes 0..{k - 1}); "
                    f"fix: pick forget.classes within 0..{k - 1}")
    _check(len(set(classes)) < k, f"forget.classes covers all {k} classes; fix: leave at least one class to retain")
    per_class = int(cfg.forget.unseen.per_class)
    counts = data.class_counts() if cfg.forget.unseen.source == "holdout" else \
        torch.bincount(data.test_y, minlength=k).numpy()
    limit = int(counts.min()) // 2
    _check(1 <= per_class <= limit,
           f"forget.unseen.per_class={per_class} is outside 1..{limit} (half the smallest class of the "
           f"{cfg.forget.unseen.source} split of {data.name}); fix: set forget.unseen.per_class<={limit}")
    validate_recipe(cfg.train)
    try:
        model = ctx.build_model(int(cfg.seed)).eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *data.in_shape))
    except (RuntimeError, ValueError) as e:
        first = str(e).splitlines()[0][:160]
        raise ConfigError(f"model {ctx.labels.get('model', '?')} does not fit {data.name} images "
                          f"{tuple(data.in_shape)} ({first}); fix: choose a model for this input size") from e
    _check(tuple(out.shape) == (2, k), f"model outputs {tuple(out.shape[1:])} logits but {data.name} has {k} "
                                       f"classes; fix: do not override the model's num_classes")
    ctx.method.validate(model, {"num_classes": k, "forget_classes": split.forget_classes,
                                "unseen_size": len(split.unseen_of(split.forget_classes)),
                                "in_shape": data.in_shape})
