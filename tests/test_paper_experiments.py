"""The LRA-NPP paper experiments (MNIST, CIFAR-10, CIFAR-100; Chang et al. 2024, arXiv 2410.23693): each
composes with the authors' class, seeds, grid and per-data-set K / H, and validates every job on data written
in the data set's real file format; in the slow tier each runs its whole grid end to end through the command
line on such data (tiny: a few images per class, an MLP, two epochs) and analyze.py prints its table in the
authors' layout with their numbers beside ours."""

import importlib.util
import itertools
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_data_formats import write_dataset

from unlearn_bench.config import compose
from unlearn_bench.run.validate import validate_config

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / ".venv" / "bin" / "unlearn-bench")
PAPER = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("paper_tables*.yaml"))
# experiment -> (torchvision data set, data label, the authors' forget class, K, H, analysed layer width);
# ChangWenhan/LRA-NPP-Unlearning@1815094 examples/batch_experiments/core/config.py:15-21, 47-53, 80-86
AUTHORS = {"paper_tables": ("MNIST", "mnist", 1, 50, 80, 512),
           "paper_tables_cifar10": ("CIFAR10", "cifar10", 9, 200, 400, 2048),
           "paper_tables_cifar100": ("CIFAR100", "cifar100", 0, 150, 250, 2048)}
TINY = ["forget.unseen.per_class=4", "progress=false"]  # the fixtures hold 10 images per class and split


def test_every_paper_experiment_is_covered():
    assert PAPER == sorted(AUTHORS)


def _grid(cfg) -> list[dict]:
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    keys = list(params)
    values = (str(params[k]).split(",") for k in keys)
    return [dict(zip(keys, v, strict=True)) for v in itertools.product(*values)]


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_is_the_authors_setup(name):
    _, data, cls, k, h, width = AUTHORS[name]
    cfg = compose([f"experiment={name}"])
    assert cfg.hydra.runtime.choices.data == data and list(cfg.forget.classes) == [cls]
    subdir = OmegaConf.to_container(cfg.hydra.sweep)["subdir"]
    assert cfg.eval.retrain and "unseen-${forget.unseen.source}" in subdir
    grid = _grid(cfg)
    assert {j["method"] for j in grid} == {"none", "retrain", "lra_npp", "lra_npp_gn", "lra_npp_ln"}
    assert {j["forget.unseen.source"] for j in grid} == {"holdout", "test"}
    assert sorted(int(j["seed"]) for j in grid)[::10] == [42 + 100 * i for i in range(5)] and len(grid) == 50
    for variant in ("lra_npp", "lra_npp_gn", "lra_npp_ln"):  # K and H per data set, not by the width rule
        method = instantiate(compose([f"experiment={name}", f"method={variant}"]).method)
        assert (method.k_for(width), method.h_for(width), method.n) == (k, h, 36), variant
    mine = instantiate(compose([f"experiment={name}", "method=lra_npp", "method.h=300"]).method)
    assert mine.h_for(width) == 300  # the command line still wins


def test_lra_npp_on_cifar_resnet50_takes_the_authors_h_outside_the_experiments():
    for data, h in (("cifar10", 400), ("cifar100", 250)):
        method = instantiate(compose([f"data={data}", "model=resnet50", "method=lra_npp"]).method)
        assert method.h_for(2048) == h, data
    method = instantiate(compose(["data=cifar10", "model=resnet18", "method=lra_npp"]).method)
    assert method.h_for(512) == 80  # no authors' setting for ResNet-18: the width rule


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory):
    """Every paper data set under one root, in torchvision's layout and the real file formats."""
    root = tmp_path_factory.mktemp("data")
    for dataset, *_ in AUTHORS.values():
        write_dataset(root, dataset, train_per_class=10, test_per_class=10)
    return root


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_validates_every_job_on_real_format_files(name, fabricated, tmp_path):
    base = [f"experiment={name}", f"data.root={fabricated}", "data.download=false", f"cache_dir={tmp_path}",
            *TINY]
    for job in _grid(compose([f"experiment={name}"])):
        if job["seed"] != "42":
            continue  # seeds change nothing that is validated before training
        n = ["method.n=4"] if job["method"].startswith("lra_npp") else []
        ctx = validate_config(compose(base + [f"{k}={v}" for k, v in job.items()] + n))
        assert ctx.data.num_classes == (100 if "cifar100" in name else 10)


def _cli(args, cwd: Path, timeout: int = 1500):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    r = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]


def _analyze(name: str, argv: list[str]):
    spec = importlib.util.spec_from_file_location(f"analyze_{name}",
                                                  ROOT / "experiments" / name / "analyze.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_runs_its_grid_end_to_end(name, fabricated, tmp_path):
    """The experiment's own sweep (two seeds) on real-format files; LRA-NPP rows analyse 4 unseen images
    instead of 36, which the tiny unseen pool cannot hold (an override only they take)."""
    _, data, cls, *_ = AUTHORS[name]
    runs = tmp_path / "runs"
    base = ["-m", f"experiment={name}", f"data.root={fabricated}", "data.download=false", "model=mlp",
            "train.epochs=2", "seed=42,142", f"runs_dir={runs}", f"cache_dir={tmp_path / 'cache'}", *TINY]
    _cli(base + ["method=none,retrain"], tmp_path)
    # ++: the first compose has method=none, which has no n
    _cli(base + ["method=lra_npp,lra_npp_gn,lra_npp_ln", "++method.n=4"], tmp_path)
    done = sorted(runs.rglob("metrics.json"))
    assert len(done) == 5 * 2 * 2 and all(json.loads(p.read_text())["status"] == "ok" for p in done)
    out = tmp_path / "analysis"
    _analyze(name, [str(runs / name), "--out", str(out)])
    for source in ("holdout", "test"):
        t = pd.read_csv(out / f"table_{data}_{source}.csv")
        assert list(t.columns[-6:]) == ["At", "Ag", "Fr", "Fs", "Time (s)", "G (MiB)"]
        ours = t[~t["method"].str.endswith("(authors)")]
        # the `none` runs are the Original row (the model before unlearning), not a row of their own
        assert ours["method"].tolist() == ["Original", "retrain", "lra_npp", "lra_npp_gn", "lra_npp_ln"]
        assert (ours["n"] == 2).all()
        assert t[t["method"] == "lra_npp (authors)"]["At"].str.match(r"\d\.\d{3} ± \d\.\d{3}").all()
        assert (out / f"pareto_{data}_{source}.png").stat().st_size > 1000
    text = (out / "README_results.md").read_text()
    assert f"## {data}, unseen images from `holdout`" in text and f"class {cls}" in text


@pytest.mark.slow
def test_cifar10_resnet50_run_edits_400_of_2048_units(fabricated, tmp_path):
    """One LRA-NPP job of the CIFAR-10 experiment with its real model: the run's record shows the authors'
    K = 200 and H = 400 of the 2,048 classifier inputs."""
    runs = tmp_path / "runs"
    _cli(["experiment=paper_tables_cifar10", "method=lra_npp", "seed=42", "forget.unseen.source=test",
          f"data.root={fabricated}", "data.download=false", "train.epochs=1", "train.batch_size=64",
          "eval.retrain=false", "method.n=4", "method.maps=0", f"runs_dir={runs}",
          f"cache_dir={tmp_path / 'cache'}", *TINY], tmp_path)
    (record,) = runs.rglob("lra_npp.json")
    layer = json.loads(record.read_text())["layers"][0]
    assert (layer["width"], layer["k"], layer["h"]) == (2048, 200, 400)
