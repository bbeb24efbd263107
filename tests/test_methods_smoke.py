"""Every method config in conf/method/ runs end to end on digits/mlp with a tiny budget.

The list is globbed when tests are collected, so a method added later is covered without editing
this file."""

from pathlib import Path

import pytest

from unlearn_bench.config import minimal_budget
from unlearn_bench.run import pipeline

METHODS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "method").glob("*.yaml"))
# Settings a default config needs to fit digits at all (it refuses them up front with a ConfigError):
# h=auto calibrates on half of the unseen pool, which on digits holds 20 images, fewer than the default n=36.
FITS_DIGITS = {"lra_npp_auto": ["method.n=20"]}


def budget_overrides(label: str) -> list[str]:
    """Every budget key cut to 1 (``config.minimal_budget``): the test checks wiring, not quality."""
    return minimal_budget(label) + FITS_DIGITS.get(label, [])


def test_every_method_config_is_collected():
    assert {"none", "retrain", "finetune", "salun"} <= set(METHODS)
    assert budget_overrides("salun") == ["method.epochs=1"]


# The GPU path's precision and layout (bf16 autocast, channels_last conv weights and batches), forced on the
# CPU with a conv model: a method whose own tensors clash with them fails here, not first on a GPU.
GPU_PATH = ("model=lenet5", "precision=bf16", "channels_last=true")


@pytest.mark.parametrize("path", ["fp32", "bf16_channels_last"])
@pytest.mark.parametrize("label", METHODS)
def test_method_runs_on_digits(digits_cfg, tmp_path, label, path):
    extra = GPU_PATH if path == "bf16_channels_last" else ()
    cfg = digits_cfg(f"method={label}", "forget.classes=[3]", *budget_overrides(label), *extra)
    m = pipeline.run(cfg, tmp_path / label)
    assert m["method"] == label
    assert m["status"] in ("ok", "failed")
    if m["status"] == "failed":
        assert m.get("reason")
        return
    for split in ("forget_train", "retain_train", "forget_test", "retain_test"):
        assert 0.0 <= m[f"acc/{split}"] <= 1.0
    assert m["cost/unlearn_s"] >= 0 and (tmp_path / label / "metrics.json").exists()
