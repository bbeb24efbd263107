"""What a run is built from, in two frozen steps.

- ``Setup.from_config(cfg)``: the cheap description that validation checks — labels, the data on the CPU,
  the model factory, the method, the split, the device and precision the run will use. Nothing is placed
  on an accelerator, so the sweep check can build one for every setup of a sweep.
- ``Context.build(setup)``: the same plus the run's tensors on its device (splits, subsets, the normaliser),
  all there once it is constructed. The models trained for a run are the ``ModelStore``'s (``run/models.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from unlearn_bench.config import choices, plain_config
from unlearn_bench.data.batches import Normalizer
from unlearn_bench.data.sources import ImageData
from unlearn_bench.data.splits import Split, make_split
from unlearn_bench.methods.base import Method, Subset, UnlearnData
from unlearn_bench.train.loop import resolve_precision

SUBSETS = ("forget_train", "retain_train", "forget_test", "retain_test", "unseen")


def _subset(x, y, idx, normalize, augment: str, channels_last: bool) -> Subset:
    idx = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=x.device)
    return Subset(x[idx], y[idx], normalize, augment, channels_last)


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@dataclass(frozen=True, eq=False)
class Setup:
    """A run's configuration made concrete, on the CPU: what validation needs and nothing more."""

    cfg: DictConfig
    labels: dict[str, str]  # the config group chosen for data, model, method ... (``config.choices``)
    device: str
    precision: str
    data: ImageData
    model_factory: Any
    method: Method
    method_label: str
    split: Split

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Setup:
        labels = choices(cfg)
        device = pick_device(cfg.device)
        data = instantiate(cfg.data).load(cfg.cache_dir)
        method = instantiate(cfg.method)
        split = make_split(data.train_y.numpy(), data.test_y.numpy(), data.num_classes, cfg.forget.classes,
                           cfg.forget.unseen.source, cfg.forget.unseen.per_class, cfg.seed)
        return cls(cfg=cfg, labels=labels, device=device, precision=resolve_precision(cfg.precision, device),
                   data=data, model_factory=instantiate(cfg.model), method=method,
                   method_label=labels.get("method", type(method).__name__.lower()), split=split)

    def build_model(self, seed: int):
        torch.manual_seed(seed)
        return self.model_factory(in_shape=self.data.in_shape, num_classes=self.data.num_classes)

    def spec(self) -> dict:
        """What trains the original model: the name of its cache entry (``identity.spec_key``) and the base
        of every other model's spec. Neither the method nor the forget classes enter it."""
        c = plain_config(self.cfg)
        data = {k: v for k, v in c["data"].items() if k not in ("root", "download", "system_dirs")}
        if self.data.fingerprint:  # a user's own files: their content, not where they lie, names the models
            data.pop("path", None)
            data["fingerprint"] = self.data.fingerprint
        return {"data": data, "model": c["model"], "train": c["train"], "seed": int(self.cfg.seed),
                "unseen": c["forget"]["unseen"], "precision": self.precision}

    def retrain_spec(self) -> dict:
        """What trains the oracle (the original's recipe on D_r): also the base of every reference model
        trained without the forget set (U-LiRA shadows, forgetting quality's retrains)."""
        return {**self.spec(), "forget_classes": self.split.forget_classes}


@dataclass(frozen=True, eq=False)
class Context(Setup):
    """A ``Setup`` with the run's tensors on its device. Frozen: a run reads it, never changes it.

    ``channels_last``: convolutions use the channels-last memory layout (``cfg.channels_last``; ``auto``
    means on CUDA), unless the images are one pixel wide: ``shape[-1]`` of the (N, C, H, W) image tensors
    is their width W, and a W = 1 input (a feature vector stored as an image) gains nothing from it."""

    normalize: Normalizer
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    channels_last: bool
    subsets: MappingProxyType[str, Subset]  # SUBSETS, read-only
    unseen_retain: Subset | None  # unseen images of the retained classes (None when every class is forgotten)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Context:
        """``Setup.from_config`` then ``build``, unvalidated: for tools and tests (a run validates in
        between)."""
        return cls.build(Setup.from_config(cfg))

    @classmethod
    def build(cls, setup: Setup) -> Context:
        d, dev, s = setup.data, setup.device, setup.split
        normalize = Normalizer(d.mean, d.std, dev)
        train_x, train_y = d.train_x.to(dev), d.train_y.to(dev)
        test_x, test_y = d.test_x.to(dev), d.test_y.to(dev)
        layout = setup.cfg.channels_last
        width = d.train_x.shape[-1]  # images are (N, C, H, W)
        channels_last = (dev.startswith("cuda") if layout == "auto" else bool(layout)) and width > 1

        def subset(x, y, idx) -> Subset:
            return _subset(x, y, idx, normalize, d.augment, channels_last)

        unseen_src = (train_x, train_y) if s.unseen_source == "holdout" else (test_x, test_y)
        other = [c for c in range(d.num_classes) if c not in s.forget_classes]
        subsets = {
            "forget_train": subset(train_x, train_y, s.forget_train),
            "retain_train": subset(train_x, train_y, s.retain_train),
            "forget_test": subset(test_x, test_y, s.forget_test),
            "retain_test": subset(test_x, test_y, s.retain_test),
            "unseen": subset(*unseen_src, s.unseen_of(s.forget_classes)),
        }
        return cls(**{f.name: getattr(setup, f.name) for f in fields(Setup)},
                   normalize=normalize, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                   channels_last=channels_last, subsets=MappingProxyType(subsets),
                   unseen_retain=subset(*unseen_src, s.unseen_of(other)) if other else None)

    def train_subset(self, idx) -> Subset:
        """The training images at ``idx`` (indices into the training split), as the run's subsets are."""
        return _subset(self.train_x, self.train_y, idx, self.normalize, self.data.augment, self.channels_last)

    def placed(self, model):
        """On the device, in eval mode, in channels_last when the run uses it (also after a cache load)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model.eval()

    def unlearn_data(self, method: Method, retain: Subset, oracle, seed: int, logger=False,
                     progress: bool = False) -> UnlearnData:
        """What ``method`` may see (its regime decides; the oracle only if it declares needs_oracle)."""
        return UnlearnData(
            regime=method.regime, method=self.method_label, num_classes=self.data.num_classes,
            forget_classes=self.split.forget_classes, device=self.device, seed=seed, recipe=self.cfg.train,
            _sets={"retain": retain, "forget": self.subsets["forget_train"],
                   "unseen": self.subsets["unseen"]},
            _unseen_retain=self.unseen_retain if method.needs_unseen_retain else None,
            _oracle=oracle if method.needs_oracle else None, logger=logger,
            progress=self.method_label if progress else False,  # the stage a training's bar names
            precision=self.precision, norm_stats=str(self.cfg.norm_stats))
