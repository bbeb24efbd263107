"""Every YAML in conf/ composes and instantiates (parametrised over the files, so new configs are covered)."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from unlearn_bench.cli import CONFIG_DIR
from unlearn_bench.config import compose
from unlearn_bench.methods.base import Method, Regime

CONF = Path(CONFIG_DIR)


def _names(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("name", _names("data"))
def test_data_configs_compose(name):
    cfg = compose([f"data={name}"])
    source = instantiate(cfg.data)
    assert hasattr(source, "load") and cfg.data.name == name
    assert int(cfg.forget.unseen.per_class) > 0


@pytest.mark.parametrize("name", _names("model"))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_model_configs_build(name, shape):
    cfg = compose([f"model={name}"])
    model = instantiate(cfg.model)(in_shape=shape, num_classes=10).eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    layer = dict(model.named_modules())[model.feature_layer]
    assert isinstance(layer, torch.nn.Linear) and layer.out_features == 10


@pytest.mark.parametrize("name", _names("method"))
def test_method_configs_instantiate(name):
    cfg = compose([f"method={name}"])
    method = instantiate(cfg.method)
    assert isinstance(method, Method) and isinstance(method.regime, Regime)


@pytest.mark.parametrize("name", _names("logger") + _names("train") + _names("eval"))
def test_other_groups_compose(name):
    group = next(g for g in ("logger", "train", "eval") if (CONF / g / f"{name}.yaml").exists())
    cfg = compose([f"{group}={name}"])
    if group == "logger":
        instantiate(cfg.logger)
    if group == "train":
        instantiate(cfg.train.optimizer)([torch.nn.Parameter(torch.zeros(1))])


@pytest.mark.parametrize("name", _names("data_model"))
def test_data_model_specialisations_apply(name):
    data = next(d for d in _names("data") if name.startswith(d + "_"))
    model = name[len(data) + 1:]
    cfg = compose([f"data={data}", f"model={model}"])
    assert cfg.hydra.runtime.choices.get("data_model") == name


@pytest.mark.parametrize("name", _names("experiment"))
def test_experiment_configs_compose(name):
    cfg = compose([f"experiment={name}"])
    assert cfg.name
