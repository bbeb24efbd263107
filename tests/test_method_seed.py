"""``method_seed`` splits the seeds by source: ``seed`` trains the original and the oracle, ``method_seed``
drives only the method's own draws (LRA-NPP's N unseen images, shuffles, random labels)."""

import json

import pytest
from hydra.core.hydra_config import HydraConfig

from unlearn_bench.cli import method_seed_tag
from unlearn_bench.config import compose
from unlearn_bench.run.identity import config_hash, setup_hash
from unlearn_bench.run.pipeline import run


def _lra_npp(cache, mseed, *extra):
    return compose(["data=digits", "model=mlp", "progress=false", f"cache_dir={cache}", "method=lra_npp",
                    "eval.retrain=true", "seed=0", f"method_seed={mseed}", *extra])


def test_method_seeds_share_one_original_and_oracle_and_redraw_the_unseen_images(tmp_path):
    cache = tmp_path / "cache"
    first = run(_lra_npp(cache, 0), tmp_path / "m0")
    second = run(_lra_npp(cache, 1), tmp_path / "m1")
    assert (first["method_seed"], second["method_seed"]) == (0, 1) and first["seed"] == second["seed"] == 0
    # one original and one oracle: the second run loads both from the cache
    assert first["original_cache_hit"] is False and second["original_cache_hit"] is True
    assert second["eval/retrain_cache_hit"] is True
    assert len(list((cache / "original").glob("*.pt"))) == 1
    assert len(list((cache / "retrain").glob("*.pt"))) == 1
    same = [k for k in first if k.startswith(("original/", "retrain/acc/"))]
    assert same and all(first[k] == second[k] for k in same)
    # another draw of the N unseen images: other top-K occurrence counts, hence (usually) other units
    counts = [json.loads((tmp_path / d / "lra_npp.json").read_text())["layers"][0] for d in ("m0", "m1")]
    assert counts[0]["unit_counts"] != counts[1]["unit_counts"] or counts[0]["units"] != counts[1]["units"]
    # a third run with method_seed 0 again reproduces the first exactly
    again = run(_lra_npp(cache, 0), tmp_path / "m0-again")
    assert again["acc/forget_test"] == first["acc/forget_test"] and again["mia/fr"] == first["mia/fr"]


def test_method_seed_is_part_of_the_run_identity_but_not_of_the_setup(tmp_path):
    a, b = _lra_npp(tmp_path, 0), _lra_npp(tmp_path, 1)
    assert config_hash(a) != config_hash(b)
    assert setup_hash(a) == setup_hash(b)  # the report may average and pair runs of both method seeds
    # the default (method_seed = seed) keeps the hash a run had before method_seed existed
    plain = compose(["data=digits", "model=mlp", f"cache_dir={tmp_path}", "method=lra_npp"])
    assert plain.method_seed == plain.seed == 0
    legacy = compose(["data=digits", "model=mlp", f"cache_dir={tmp_path}", "method=lra_npp", "~method_seed"])
    assert config_hash(plain) == config_hash(legacy)


@pytest.mark.parametrize("overrides, tail", [
    ([], "forget0-seed0"),                                 # the folder runs had before method_seed
    (["method_seed=1"], "forget0-seed0-mseed1"),
    (["seed=3"], "forget0-seed3"),                         # method_seed follows seed by default
    (["seed=3", "method_seed=0"], "forget0-seed3-mseed0"),
])
def test_a_sweep_over_method_seeds_writes_one_folder_per_run(overrides, tail):
    cfg = compose(["data=digits", "model=mlp", "method=lra_npp", *overrides])
    HydraConfig.instance().set_config(cfg)  # what Hydra does before it names the folder
    try:
        assert cfg.hydra.sweep.subdir == f"digits-mlp/lra_npp/{tail}"
        assert cfg.hydra.run.dir.endswith(f"/digits-mlp/lra_npp/{tail}")
    finally:
        HydraConfig.instance().cfg = None  # other tests must not see a Hydra run in progress
    assert method_seed_tag(2, 2) == "" and method_seed_tag(2, 5) == "-mseed5"


def test_variance_analysis_splits_the_spread_by_source_as_a_nested_anova():
    import importlib.util
    from pathlib import Path

    import numpy as np
    import pandas as pd
    path = Path(__file__).resolve().parent.parent / "experiments" / "variance" / "analyze.py"
    spec = importlib.util.spec_from_file_location("variance_analyze", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # two seeds x two method seeds: x = [[0, 2], [10, 12]]; draws' std 0.1 on seed 0, 0.3 on seed 1
    runs = pd.DataFrame({"seed": [0, 0, 1, 1], "method_seed": [0, 1, 0, 1], "mia/fr": [0.0, 2.0, 10.0, 12.0],
                         "mia/fr_std": [0.1, 0.1, 0.3, 0.3], "eval/mia_draws": 50})
    d = mod.decompose(runs, "mia/fr")
    # within seeds: (1 + 1 + 1 + 1) / (1 + 1) = 2; seed means 1 and 11 vary by 50, less 2 / M = 1 -> 49
    assert d["method seed"] == np.sqrt(2.0) and d["method seed n"] == 2
    assert d["training seed"] == 7.0 and d["training seed n"] == 2
    one = np.sqrt((2 * 0.01 + 2 * 0.09) / 4)  # one draw's std; the runs report means over R = 50 draws
    assert np.isclose(d["one draw"], one) and np.isclose(d["attack draw"], one / np.sqrt(50))
    assert d["attack draw n"] == "50 x 4"
    assert np.isclose(d["total"], np.std([0, 2, 10, 12], ddof=1))
    # no spread between method seeds: all of it is the training seed's
    same = mod.decompose(runs.assign(**{"mia/fr": [1.0, 1.0, 11.0, 11.0]}), "mia/fr")
    assert same["method seed"] == 0 and np.isclose(same["training seed"], np.sqrt(50))
