"""A method's hyperparameters are declared once, on its class (``hparams``): the checks of ``method.*``
values and the Optuna search spaces in conf/hydra/sweeper/ come from those declarations alone, and training
goes through ``UnlearnData.fit``, which brings the run's device, logger and progress bar."""

import inspect
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class
from omegaconf import OmegaConf

from unlearn_bench.config import CONFIG_DIR, compose
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import (
    Choice,
    Float,
    check_hyperparameters,
    check_method_config,
    main,
    method_targets,
    search_spaces,
)
from unlearn_bench.train import loop

ROOT = Path(__file__).resolve().parents[1]
SWEEPER = Path(CONFIG_DIR) / "hydra" / "sweeper"
LABELS = method_targets(CONFIG_DIR)
TARGETS = sorted(set(LABELS.values()))


# -- search spaces ------------------------------------------------------------------------------------------
def test_the_shipped_search_spaces_are_the_generated_ones():
    generated = search_spaces(CONFIG_DIR)
    shipped = {p.name for p in SWEEPER.glob("optuna_*.yaml")} - {"optuna_fair.yaml"}
    assert set(generated) == shipped
    for name, text in generated.items():
        assert (SWEEPER / name).read_text() == text, \
            f"{name} is stale; fix: python -m unlearn_bench.methods.hparams --write conf/hydra/sweeper"


def test_the_command_writes_what_it_checks(tmp_path):
    assert main(["--check", str(SWEEPER)]) == 0
    assert main(["--check", str(tmp_path)]) == 1
    assert main(["--write", str(tmp_path)]) == 0 and main(["--check", str(tmp_path)]) == 0


# The spaces the hand-written files held before they were generated: the studies sample the same ranges,
# in the same order (a seeded sampler draws the parameters in turn).
BEFORE = {
    "boundary_shrink": {"bound": "tag(log, interval(0.01, 1.0))", "lr": "tag(log, interval(1e-6, 1e-3))",
                        "epochs": "int(interval(1, 10))"},
    "finetune": {"lr": "tag(log, interval(1e-4, 1e-1))", "epochs": "int(interval(1, 10))"},
    "grad_ascent": {"lr": "tag(log, interval(1e-6, 1e-3))", "epochs": "int(interval(1, 10))"},
    "l1_sparse": {"gamma": "tag(log, interval(1e-5, 1e-2))", "lr": "tag(log, interval(1e-4, 1e-1))",
                  "epochs": "int(interval(1, 10))"},
    "lf_ssd": {"alpha": "tag(log, interval(1.0, 100.0))", "lam": "tag(log, interval(0.1, 10.0))"},
    "lra_npp": {"h_fraction": "tag(log, interval(0.01, 0.6))", "k_fraction": "tag(log, interval(0.01, 0.3))",
                "rule": "choice(epsilon, gamma, alpha1_beta0)"},
    "neggrad_plus": {"alpha": "interval(0.9, 0.9999)", "lr": "tag(log, interval(1e-4, 1e-1))",
                     "epochs": "int(interval(1, 10))"},
    "random_label": {"lr": "tag(log, interval(1e-4, 1e-1))", "epochs": "int(interval(1, 10))"},
    "salun": {"mask_ratio": "interval(0.1, 0.9)", "lr": "tag(log, interval(1e-4, 1e-1))",
              "epochs": "int(interval(1, 10))"},
    "scrub": {"lr": "tag(log, interval(1e-5, 1e-2))", "epochs": "int(interval(1, 10))",
              "max_steps": "int(interval(1, 5))"},
    "ssd": {"alpha": "tag(log, interval(1.0, 100.0))", "lam": "tag(log, interval(0.1, 10.0))"},
}


def _parsed(params: dict) -> list:
    parser = OverridesParser.create()
    return [(k, parser.parse_override(f"{k}={v}").value()) for k, v in params.items()]


@pytest.mark.parametrize("label", sorted(BEFORE))
def test_the_generated_spaces_are_the_ones_the_studies_searched(label):
    params = OmegaConf.load(SWEEPER / f"optuna_{label}.yaml").params
    assert _parsed({k.removeprefix("method."): v for k, v in params.items()}) == _parsed(BEFORE[label])


# -- checks -------------------------------------------------------------------------------------------------
BAD = [  # (target, value, the whole message)
    ("baselines.finetune.Finetune", {"lr": -0.1},
     "method.lr=-0.1 must be > 0; fix: set method.lr to a number > 0"),
    ("baselines.finetune.Finetune", {"epochs": 0},
     "method.epochs=0 must be >= 1; fix: set method.epochs to an int >= 1"),
    ("baselines.finetune.Finetune", {"batch_size": 2.5},
     "method.batch_size=2.5 is not int; fix: set method.batch_size to an int >= 1"),
    ("baselines.finetune.Finetune", {"augment": "yes"},
     "method.augment='yes' is not true or false or auto; fix: set method.augment to true or false or auto"),
    ("baselines.salun.SalUn", {"mask_ratio": 1.5},
     "method.mask_ratio=1.5 must be in (0, 1]; fix: set method.mask_ratio to a number in (0, 1]"),
    ("baselines.scrub.SCRUB", {"max_steps": 0},
     "method.max_steps=0 must be >= 1; fix: set method.max_steps to an int >= 1 or null"),
    ("baselines.scrub.SCRUB", {"lr_milestones": [3, "x"]},
     "method.lr_milestones=[3, 'x'] is not list of int or null; fix: set method.lr_milestones to a list of "
     "int or null"),
    ("baselines.ssd.SSD", {"alpha": "high"},
     "method.alpha='high' is not float or auto; fix: set method.alpha to a number > 0 or auto"),
    ("baselines.jit.JiT", {"source": "retain"},
     "method.source='retain' is not one of unseen, forget; fix: set method.source=unseen or "
     "method.source=forget"),
    ("unlearn_bench.methods.lra_npp.LRANPP", {"auto_target": 1.0},
     "method.auto_target=1.0 must be in [0, 1); fix: set method.auto_target to a number in [0, 1) or null"),
    ("baselines.retrain.Retrain", {"lr": 0.1},
     "method.lr=0.1 is not a hyperparameter of Retrain, so the method cannot be built; fix: remove it"),
]


@pytest.mark.parametrize("target, values, message", BAD, ids=[m.split(";")[0] for *_, m in BAD])
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(target, values, message):
    with pytest.raises(ConfigError) as e:
        check_method_config({"_target_": target, **values})
    assert str(e.value) == message
    cls = get_class(target)
    if set(values) <= set(cls.hparams):  # an argument the constructor does not take is Python's TypeError
        with pytest.raises(ConfigError) as e:  # a method is never built with a bad value either
            cls(**values)
        assert str(e.value) == message


class Damp(Method):
    """A method written after the framework: its declarations are all the checking it asks for."""

    regime = Regime.ZERO_SHOT
    hparams = {"strength": Float(gt=0, le=1).tune(0.1, 1.0), "mode": Choice("soft", "hard")}

    def __init__(self, strength: float = 0.5, mode: str = "soft"):
        super().__init__()
        self.strength, self.mode = strength, mode


@pytest.mark.parametrize("values, message", [
    ({"strength": 2}, "method.strength=2 must be in (0, 1]; fix: set method.strength to a number in (0, 1]"),
    ({"mode": "wild"},
     "method.mode='wild' is not one of soft, hard; fix: set method.mode=soft or method.mode=hard"),
    ({"stength": 0.5},
     "method.stength=0.5 is not a hyperparameter of Damp, so the method cannot be built; fix: remove it or "
     "set one of strength, mode"),
])
def test_a_new_method_is_checked_from_its_declarations_alone(values, message):
    check_hyperparameters(Damp, {"strength": 1.0, "mode": "hard"})
    with pytest.raises(ConfigError) as e:  # the configuration names the class: no list to register it in
        check_method_config({"_target_": f"{__name__}.Damp", **values})
    assert str(e.value) == message
    if "stength" not in values:
        with pytest.raises(ConfigError) as e:
            Damp(**values)
        assert str(e.value) == message


def test_positional_arguments_are_checked_too():
    assert Damp(0.3).strength == 0.3
    with pytest.raises(ConfigError, match="strength=0 must be"):
        Damp(0)


@pytest.mark.parametrize("target", TARGETS)
def test_every_method_declares_exactly_its_arguments_with_defaults_it_allows(target):
    cls = get_class(target)
    params = {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    assert list(params) and set(cls.hparams) == set(params) or not params and not cls.hparams
    for name, p in params.items():
        assert cls.hparams[name].problem(f"method.{name}", p.default) is None, name


@pytest.mark.parametrize("label", sorted(LABELS))
def test_every_method_configuration_passes_its_declarations(label):
    cfg = compose(["data=digits", f"method={label}"])
    check_method_config(OmegaConf.to_container(cfg.method, resolve=True))


def test_no_validate_rechecks_a_declared_range_and_no_baseline_binds_the_loop_itself():
    for path in sorted((ROOT / "baselines").glob("*.py")):
        text = path.read_text()
        assert "logger=data.logger" not in text and "check_positive" not in text, path.name


# -- UnlearnData.fit ----------------------------------------------------------------------------------------
def test_data_fit_brings_the_runs_device_precision_norm_stats_logger_and_progress(monkeypatch):
    seen = []

    def recording_fit(model, batches, loss_fn, optimizer, device, **kw):
        seen.append((device, kw))
        return [0.5]

    monkeypatch.setattr(loop, "fit", recording_fit)
    data = UnlearnData(Regime.FULL, "m", 3, [0], "cuda:1", 0, None, logger="the logger", progress="unlearn",
                       precision="bf16-mixed", norm_stats="frozen")
    curve = data.fit(torch.nn.Linear(2, 3), [], None, torch.optim.SGD, epochs=2, after_step=print)
    assert curve == [0.5] and seen == [("cuda:1", {"logger": "the logger", "progress": "unlearn",
                                                   "precision": "bf16-mixed", "norm_stats": "frozen",
                                                   "epochs": 2, "after_step": print})]
