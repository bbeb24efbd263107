"""SCRUB, Kurmanji, Triantafillou, Hayes & Triantafillou, "Towards Unbounded Machine Unlearning",
NeurIPS'23 (eq. 2-3; code: meghdadk/SCRUB@98ffb11).

The original model is a frozen teacher; the student starts as a copy. Each epoch e = 1..epochs first
(while e <= max_steps) drains D_f once in a max-pass that ascends KL(teacher || student) at temperature T,
then drains D_r once in a min-pass that descends γ·CE + α·KL (T² · batch-mean KL, as ``DistillKL``). One
optimizer serves both passes, so momentum / Adam moments carry across them; the learning rate is
multiplied by ``lr_decay_rate`` once for every entry of ``lr_milestones`` that the epoch number exceeds
(the authors' ``adjust_learning_rate`` with ``lr_decay_epochs``). Both loaders are reshuffled every pass
and keep their short last batch. The student trains in train mode, the teacher in eval mode.

The authors run two recipes (their README): a large-scale one on 10-class data (CIFAR-10 / Lacuna-10,
50,000 training images; ``large_scale_unlearning.ipynb``) and a small-scale one on 5-class subsets
(CIFAR-5 / Lacuna-5, 625 training images; ``small_scale_unlearning.ipynb``). ``recipe: auto`` picks
``small`` for a task of at most ``SMALL_SCALE_MAX_CLASSES`` classes, the one property that splits their two
settings cleanly, else ``large``; every hyperparameter left null comes from the chosen recipe, one set
explicitly overrides it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import frozen_copy, kl_to_teacher, shared_optimizer
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import Choice, Float, Int, List

SMALL_SCALE_MAX_CLASSES = 5
# meghdadk/SCRUB@98ffb11; line numbers are the .ipynb files' JSON lines
RECIPES = {
    "large": dict(  # large_scale_unlearning.ipynb
        optimizer="sgd",            # :726 args.optim = 'sgd'
        lr=5e-4,                    # :740 sgda_learning_rate
        momentum=0.9,               # :744 sgda_momentum
        weight_decay=5e-4,          # :743 sgda_weight_decay
        epochs=3,                   # :739 sgda_epochs
        max_steps=2,                # :731 msteps
        temperature=4.0,            # :734 kd_T
        ce_weight=0.99,             # :727 gamma
        kl_weight=0.001,            # :728 alpha
        retain_batch_size=256,      # :684 retain_loader (sgda_batch_size=128 at :737 is never used)
        forget_batch_size=512,      # :678 forget_loader (del_batch_size=32 at :738 is never used)
        lr_milestones=(3, 5, 9),  # :741 (no decay within 3 epochs: epoch > 3 never holds)
        lr_decay_rate=0.1,          # :742
    ),
    "small": dict(  # small_scale_unlearning.ipynb
        optimizer="adam",           # :414 args.optim = 'adam' (Adam ignores momentum)
        lr=5e-4,                    # :426
        momentum=0.9,               # :430 (unused by Adam)
        weight_decay=0.1,           # :429 (Adam's L2 term, not AdamW)
        epochs=10,                  # :425
        max_steps=3,                # :419
        temperature=2.0,            # :422
        ce_weight=1.0,              # :415 gamma
        kl_weight=0.5,              # :416 alpha
        retain_batch_size=32,       # :352 retain_bs, used at :382
        forget_batch_size=64,       # :353 forget_bs, used at :376
        lr_milestones=(5, 8, 9),  # :427
        lr_decay_rate=0.1,          # :428
    ),
}


def lr_at(epoch: int, lr: float, decay_epochs, rate: float) -> float:
    """The authors' step schedule (thirdparty/repdistiller/helper/util.py:22-30): epoch is 1-based."""
    return lr * rate ** sum(epoch > d for d in decay_epochs)


class SCRUB(Method):
    """SCRUB (Kurmanji et al. NeurIPS'23): alternate max-passes on D_f and min-passes on D_r."""

    regime = Regime.FULL
    # null: the recipe's value
    hparams = {"recipe": Choice("auto", *RECIPES), "optimizer": Choice("sgd", "adam", null=True),
               "lr": Float(gt=0, null=True).tune(1e-5, 1e-2, log=True), "momentum": Float(ge=0, null=True),
               "weight_decay": Float(ge=0, null=True), "epochs": Int(ge=1, null=True).tune(1, 10),
               "max_steps": Int(ge=1, null=True).tune(1, 5), "temperature": Float(gt=0, null=True),
               "ce_weight": Float(ge=0, null=True), "kl_weight": Float(ge=0, null=True),
               "retain_batch_size": Int(ge=1, null=True), "forget_batch_size": Int(ge=1, null=True),
               "lr_milestones": List(of=int, null=True), "lr_decay_rate": Float(gt=0, null=True)}
    search_note = """Every other setting comes from method.recipe (auto: the authors' small-scale recipe for
    at most 5 classes, else the large-scale one; baselines/scrub.py)."""

    def __init__(self, recipe: str = "auto", optimizer: str | None = None, lr: float | None = None,
                 momentum: float | None = None, weight_decay: float | None = None, epochs: int | None = None,
                 max_steps: int | None = None, temperature: float | None = None,
                 ce_weight: float | None = None,
                 kl_weight: float | None = None, retain_batch_size: int | None = None,
                 forget_batch_size: int | None = None, lr_milestones: list | None = None,
                 lr_decay_rate: float | None = None):
        super().__init__()
        self.recipe = str(recipe)
        self.overrides = {k: v for k, v in dict(
            optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, epochs=epochs,
            max_steps=max_steps, temperature=temperature, ce_weight=ce_weight, kl_weight=kl_weight,
            retain_batch_size=retain_batch_size, forget_batch_size=forget_batch_size,
            lr_milestones=lr_milestones, lr_decay_rate=lr_decay_rate).items() if v is not None}
        self.settings: dict = {}

    def resolve(self, num_classes: int) -> dict:
        """The recipe's values for a task of ``num_classes`` classes, with explicit overrides."""
        name = self.recipe if self.recipe != "auto" else \
            ("small" if num_classes <= SMALL_SCALE_MAX_CLASSES else "large")
        s = {**RECIPES[name], **self.overrides, "recipe": name}
        s["lr_milestones"] = tuple(int(d) for d in s["lr_milestones"])
        return s

    def validate(self, model, info) -> None:
        e, m = self.overrides.get("epochs"), self.overrides.get("max_steps")
        if e is not None and m is not None and m > e:
            raise ConfigError(f"SCRUB needs max_steps <= epochs (got {m} > {e}); fix: e.g. epochs=3 "
                              f"max_steps=2")

    def _optimizer(self, model: nn.Module, s: dict) -> torch.optim.Optimizer:
        if s["optimizer"] == "adam":
            return torch.optim.Adam(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
        return torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                               weight_decay=s["weight_decay"])

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        s = self.settings = self.resolve(data.num_classes)
        teacher, T = frozen_copy(model), float(s["temperature"])

        def maximise(student, batch):
            x, _ = batch
            with torch.no_grad():
                t = teacher(x)
            return -kl_to_teacher(student(x), t, T)

        def minimise(student, batch):
            x, y = batch
            with torch.no_grad():
                t = teacher(x)
            out = student(x)
            return s["ce_weight"] * F.cross_entropy(out, y) + s["kl_weight"] * kl_to_teacher(out, t, T)

        opt = self._optimizer(model, s)
        forget = data.forget.batches(int(s["forget_batch_size"]), shuffle=True, seed=data.seed)
        retain = data.retain.batches(int(s["retain_batch_size"]), shuffle=True, seed=data.seed)
        curve = {"max": [], "min": []}
        for epoch in range(1, int(s["epochs"]) + 1):
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch, s["lr"], s["lr_milestones"], s["lr_decay_rate"])
            if epoch <= int(s["max_steps"]):
                curve["max"] += data.fit(model, forget, maximise, shared_optimizer(opt), epochs=1)
            curve["min"] += data.fit(model, retain, minimise, shared_optimizer(opt), epochs=1)
        self.extra_metrics["scrub/final_forget_kl"] = -curve["max"][-1] if curve["max"] else float("nan")
        self.extra_metrics["scrub/final_retain_loss"] = curve["min"][-1]
        self.extra_metrics["scrub/small_recipe"] = float(s["recipe"] == "small")
        return model.eval()
