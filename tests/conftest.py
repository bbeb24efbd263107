import os

import pytest
from fake_slurm import slurm_bin  # noqa: F401  (the fake Slurm tools' fixture, for every test file)

from unlearn_bench.config import compose


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One cache per test session: the digits original model is trained once and shared."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def digits_cfg(cache_dir):
    def make(*overrides):
        return compose(["data=digits", "model=mlp", "progress=false", f"cache_dir={cache_dir}", *overrides])
    return make


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
