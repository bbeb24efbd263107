"""The method interface: a method declares its data regime and receives only that data.

Regimes (see ``methods.md``): ``full`` (D_r and D_f), ``forget_only`` (D_f), ``zero_shot`` (a pool of
unseen forget-class images, never trained on). ``UnlearnData`` raises ``RegimeError`` as soon as a method
reaches for data outside its regime, so a method cannot silently use more than it claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from unlearn_bench.data.batches import Subset
from unlearn_bench.errors import RegimeError
from unlearn_bench.methods.hparams import HP, check_arguments


class Regime(str, Enum):
    FULL = "full"
    FORGET_ONLY = "forget_only"
    ZERO_SHOT = "zero_shot"


_ALLOWED = {  # exactly the sets of methods.md's regimes: a wider regime does not imply the unseen pool
    Regime.FULL: {"retain", "forget"},
    Regime.FORGET_ONLY: {"forget"},
    Regime.ZERO_SHOT: {"unseen"},
}


@dataclass
class UnlearnData:
    """What a method may see. Accessing a set outside ``regime`` raises ``RegimeError``."""

    regime: Regime
    method: str
    num_classes: int
    forget_classes: list[int]
    device: str
    seed: int
    recipe: Any  # the original model's training recipe (epochs, batch_size, optimizer, ...)
    _sets: dict[str, Subset] = field(repr=False, default_factory=dict)
    _unseen_retain: Subset | None = field(repr=False, default=None)
    _oracle: Callable[[], tuple[nn.Module, dict]] | None = field(repr=False, default=None)
    logger: Any = False
    progress: bool | str = True  # False, True, or the stage name a training's progress bar shows
    precision: str | None = None  # a Lightning precision name; None: the loop's enclosing scope
    norm_stats: str | None = None  # update | frozen (cfg.norm_stats); None: the loop's enclosing scope

    def _get(self, name: str) -> Subset:
        if name not in _ALLOWED[self.regime]:
            raise RegimeError(f"method {self.method} (regime {self.regime.value}) asked for the {name} set, "
                              f"which its regime does not allow; fix: declare a wider regime in its class")
        return self._sets[name]

    @property
    def retain(self) -> Subset:
        return self._get("retain")

    @property
    def forget(self) -> Subset:
        return self._get("forget")

    @property
    def unseen(self) -> Subset:
        """Unseen images of the forget class(es): held out of training (or of the test metrics)."""
        return self._get("unseen")

    @property
    def unseen_retain(self) -> Subset:
        """Unseen images of the *other* classes: only for methods that declare ``needs_unseen_retain``."""
        if self._unseen_retain is None:
            raise RegimeError(f"method {self.method} asked for unseen retain-class images; fix: set "
                              f"needs_unseen_retain=True on the method (it is then flagged in results)")
        return self._unseen_retain

    def retrain_oracle(self) -> tuple[nn.Module, dict]:
        """The model retrained from scratch on D_r (cached): only for a method that declares
        ``needs_oracle`` (the ``retrain`` row itself) — every other method is scored against it."""
        self._get("retain")
        if self._oracle is None:
            raise RegimeError(f"method {self.method} asked for the retrain oracle, the model it is scored "
                              f"against; fix: only the retrain method (needs_oracle=True) may use it")
        return self._oracle()

    def fit(self, model: nn.Module, batches, loss_fn: Callable, optimizer: Callable, **kw) -> list[float]:
        """``unlearn_bench.train.loop.fit`` on this run's device, at its precision and normalisation-
        statistics mode, with its logger and progress bar; ``kw``: epochs, max_steps, schedule,
        after_step. Returns the loss curve, one value per epoch."""
        from unlearn_bench.train import loop
        return loop.fit(model, batches, loss_fn, optimizer, self.device, logger=self.logger,
                        progress=self.progress, precision=self.precision, norm_stats=self.norm_stats,
                        **kw)


class Method:
    """Base class. Subclasses set ``regime`` and implement ``unlearn``; hyperparameters are ``__init__``
    arguments with the defaults stated in the method's YAML (``conf/method/<label>.yaml``), each declared
    in ``hparams`` (name -> ``methods.hparams`` spec: type, range, search range). The declarations are
    checked on the configuration before anything is built and on every construction, and give the Optuna
    search space (``search_note``: the comment its generated sweeper file carries)."""

    regime: ClassVar[Regime] = Regime.FULL
    needs_unseen_retain: bool = False  # unseen images of the other classes (recorded in metrics.json)
    needs_oracle: ClassVar[bool] = False  # the retrain oracle itself: the `retrain` row only
    hparams: ClassVar[dict[str, HP]] = {}
    search_note: ClassVar[str] = ""

    def __new__(cls, *args, **kwargs):
        check_arguments(cls, args, kwargs)
        return super().__new__(cls)

    def __init__(self) -> None:
        self.extra_metrics: dict[str, float] = {}

    def validate(self, model: nn.Module, info: dict) -> None:
        """Checks that need the model or the data, before anything trains (raise ConfigError); the declared
        types and ranges are checked already. ``info`` holds num_classes, forget_classes, unseen_size,
        in_shape."""

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        raise NotImplementedError

    def write_artifacts(self, run_dir: Path, original: nn.Module, unlearned: nn.Module,
                        data: UnlearnData) -> None:
        """Write method-specific outputs (json, figures) into the run directory; untimed."""
