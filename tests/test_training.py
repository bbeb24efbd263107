"""The training loop and device batching: loss goes down, the curve has one point per epoch, NaN stops
the run, max_steps cuts an epoch short, augmentation keeps shapes, every pass reshuffles."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from unlearn_bench.data.batches import Normalizer, TensorBatches, random_crop_flip
from unlearn_bench.errors import Diverged
from unlearn_bench.train import progress as progress_line
from unlearn_bench.train.loop import cross_entropy, fit, precision_scope, resolve_precision
from unlearn_bench.train.scopes import current_precision

ROOT = Path(__file__).resolve().parent.parent


def _blobs(n=256, seed=0):
    """Two classes of 1x4x4 uint8 images, separable by mean brightness."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = torch.where(y[:, None, None, None] == 1, 180.0, 70.0)
    x = (base + 30 * torch.randn(n, 1, 4, 4, generator=g)).clamp(0, 255).to(torch.uint8)
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def _batches(bs=32, **kw):
    x, y = _blobs()
    return TensorBatches(x, y, Normalizer((0.5,), (0.25,), "cpu"), bs, **kw)


def test_fit_reduces_loss_and_returns_one_point_per_epoch():
    model, b = _model(), _batches()
    curve = fit(model, b, cross_entropy(), partial(torch.optim.Adam, lr=1e-2), "cpu", epochs=4,
                progress=False)
    assert len(curve) == 4
    assert curve[-1] < 0.5 * curve[0]
    assert not model.training  # handed back in eval mode


def test_precision_defaults_per_device_and_a_scope_overrides_it():
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("auto", "cuda:1") == "bf16-mixed"
    assert resolve_precision("32", "cuda") == "32-true" and resolve_precision("bf16", "cpu") == "bf16-mixed"
    assert current_precision("cpu") == "32-true" and current_precision("cuda") == "bf16-mixed"
    with precision_scope("bf16-mixed"):
        assert current_precision("cpu") == "bf16-mixed"
    assert current_precision("cpu") == "32-true"  # the scope ends with its block


@pytest.mark.parametrize("explicit", [False, True])
def test_bf16_training_on_cpu_runs_the_step_under_autocast(explicit):
    seen = []

    def loss(model, batch):
        x, y = batch
        out = model(x)
        seen.append(out.dtype)
        return nn.functional.cross_entropy(out, y)

    model = _model()
    if explicit:  # a keyword of fit; the scope is its default
        curve = fit(model, _batches(), loss, partial(torch.optim.Adam, lr=1e-2), "cpu", epochs=3,
                    progress=False, precision="bf16-mixed")
    else:
        with precision_scope("bf16-mixed"):
            curve = fit(model, _batches(), loss, partial(torch.optim.Adam, lr=1e-2), "cpu", epochs=3,
                        progress=False)
    assert set(seen) == {torch.bfloat16}
    assert curve[-1] < curve[0] and model[1].weight.dtype == torch.float32  # fp32 master weights


def test_cosine_schedule_reaches_zero_and_after_step_runs_each_step():
    model, b = _model(), _batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    fit(model, b, cross_entropy(), lambda params: opt, "cpu", epochs=2, schedule="cosine",
        after_step=lambda m: calls.append(1), progress=False)
    assert len(calls) == 2 * len(b)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_max_steps_stops_mid_epoch():
    model, b = _model(), _batches(bs=16)  # 16 batches per epoch
    seen = []
    curve = fit(model, b, cross_entropy(), partial(torch.optim.SGD, lr=0.1), "cpu", max_steps=5,
                after_step=lambda m: seen.append(1), progress=True)
    assert len(seen) == 5
    assert len(curve) == 1  # the partial epoch still gets its mean loss


def test_max_steps_stops_a_run_of_several_epochs_at_that_step():
    seen = []
    curve = fit(_model(), _batches(bs=64), cross_entropy(), partial(torch.optim.SGD, lr=0.1), "cpu", epochs=5,
                max_steps=6, after_step=lambda m: seen.append(1), progress=False)  # 4 steps per epoch
    assert len(seen) == 6 and len(curve) == 2


def test_a_logger_gets_the_epoch_loss_and_the_bar_shows_it(tmp_path):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    curve = fit(_model(), _batches(bs=64), cross_entropy(), partial(torch.optim.SGD, lr=0.1), "cpu", epochs=3,
                logger=CSVLogger(tmp_path, name="t"), progress=False)
    with next(tmp_path.rglob("metrics.csv")).open() as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["train_loss"]) for r in rows if r.get("train_loss")]
    assert logged == pytest.approx(curve)
    assert [int(r["step"]) for r in rows if r.get("train_loss")] == [3, 7, 11]  # the batches seen so far
    assert [int(r["epoch"]) for r in rows if r.get("train_loss")] == [0, 1, 2]
    bar = progress_line.EpochBar("oracle", 4, interval=60.0)
    bar.end_epoch(0.25)
    assert bar.postfix == "train_loss=0.25"


def test_nan_loss_raises_diverged():
    def nan_loss(model, batch):
        return model(batch[0]).sum() * float("nan")
    with pytest.raises(Diverged):
        fit(_model(), _batches(), nan_loss, partial(torch.optim.SGD, lr=0.1), "cpu", epochs=1, progress=False)


def test_huge_learning_rate_raises_diverged():
    with pytest.raises(Diverged):
        fit(_model(), _batches(), cross_entropy(), partial(torch.optim.SGD, lr=1e10), "cpu", epochs=3,
            progress=False)


def test_augmented_batches_keep_shape_dtype_and_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(64)
    b = TensorBatches(x, y, Normalizer((0.5,) * 3, (0.25,) * 3, "cpu"), 16, seed=1, augment="crop_flip")
    for xb, yb in b:
        assert xb.shape == (16, 3, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.long
    out = random_crop_flip(x, 2, True, g)
    assert out.shape == x.shape and out.dtype == torch.uint8 and not torch.equal(out, x)
    # every output is one of the 5x5 shifts of the zero-padded image, mirrored or not
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        crops = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(-1)) for c in crops)


def test_batches_reshuffle_every_pass_and_cover_every_item():
    x = torch.zeros(40, 1, 2, 2, dtype=torch.uint8)
    b = TensorBatches(x, torch.arange(40), Normalizer((0.0,), (1.0,), "cpu"), 8, seed=3)
    first = torch.cat([yb for _, yb in b])
    second = torch.cat([yb for _, yb in b])
    assert sorted(first.tolist()) == list(range(40)) == sorted(second.tolist())
    assert not torch.equal(first, second)
    again = TensorBatches(x, torch.arange(40), Normalizer((0.0,), (1.0,), "cpu"), 8, seed=3)
    assert torch.equal(torch.cat([yb for _, yb in again]), first)  # seeded


def test_bench_timing_interleaves_and_records(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import common
    order = []
    variants = {"a": lambda: order.append("a"), "b": (lambda: 5, lambda s: order.append(s))}
    t = common.alternate(variants, "cpu", 2)
    assert order == ["a", 5, "a", 5, 5, "a"] and len(t["a"]) == len(t["b"]) == 2  # warm-up, A B, B A
    args = common.parser("x").parse_args(["--results", str(tmp_path / "R.md")])
    common.record(args, "bench_x", "cpu", {"ratio": 1.234, "n": 3})
    text = (tmp_path / "R.md").read_text()
    assert "| date |" in text and "bench_x" in text and "ratio 1.23" in text and torch.__version__ in text


@pytest.mark.slow  # a subprocess importing torch and Lightning: over 30 s on a loaded 2-core machine
def test_bench_epoch_quick_mode_runs(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_epoch.py"), "--quick",
                          "--models", "mlp,cnn_paper", "--results", str(tmp_path / "RESULTS.md")],
                         check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "harness/plain" in out.stdout
    assert "bench_epoch" in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.slow  # a subprocess importing torch and Lightning
def test_bench_overhead_quick_mode_prints_the_ratios(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_overhead.py"), "--quick",
                          "--models", "mlp,lenet5", "--results", str(tmp_path / "R.md")],
                         check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mlp harness/plain" in out.stdout and "lenet5 harness/plain cpu" in out.stdout


def test_gpu_suite_script_runs_its_stages_and_reports_them(tmp_path):
    """benchmarks/gpu_suite.sh in --smoke mode (no GPU needed): stages run, rows land in the results file,
    a bad argument is refused in one line."""
    env = {**os.environ, "PYTHON": sys.executable}
    results, logs = tmp_path / "R.md", tmp_path / "logs"
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--smoke", "--only", "lra,eval",
                        "--results", str(results), "--logs", str(logs)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "lra    ok" in r.stdout and "eval   ok" in r.stdout
    rows = [line for line in results.read_text().splitlines() if line.startswith("| 20")]
    assert [row.split(" | ")[1] for row in rows] == ["bench_lra_npp", "bench_eval"]
    assert (logs / "eval.log").exists() and (logs / "RESULTS.md").read_text() == results.read_text()
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--only", "nope", "--smoke"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown stage nope")
    missing = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--results"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: --results needs a value")
    table = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    scratch = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--smoke", "--only", "lra"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert scratch.returncode == 0 and "gpu-suite-smoke" in scratch.stdout  # quick rows are not results
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == table
    slow = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--smoke", "--only", "eval",
                           "--results", str(tmp_path / "R2.md")], capture_output=True, text=True,
                          env={**env, "GPU_SUITE_LIMIT_EVAL": "1"}, timeout=120)
    # a stage over its limit fails the suite
    assert slow.returncode == 1 and "eval   over its 1 s limit" in slow.stdout


def test_the_bar_redraws_rarely_when_stdout_is_a_log(monkeypatch):
    monkeypatch.setattr(progress_line, "is_terminal", lambda: False)
    assert progress_line.EpochBar("x", 3).interval == progress_line.LOG_PROGRESS_INTERVAL_S
    monkeypatch.setattr(progress_line, "is_terminal", lambda: True)
    bar = progress_line.EpochBar("x", 3)
    assert bar.interval == progress_line.PROGRESS_INTERVAL_S
    bar.close()


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("mode", ["update", "frozen"])
def test_norm_stats_scope_decides_whether_batchnorm_statistics_move(mode, explicit):
    from unlearn_bench.train.loop import norm_stats_scope
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    before = model[2].running_mean.clone()
    train = partial(fit, model, _batches(bs=64), cross_entropy(), partial(torch.optim.SGD, lr=0.1), "cpu",
                    epochs=2, progress=False)
    if explicit:  # the keyword wins over the scope
        with norm_stats_scope("update" if mode == "frozen" else "frozen"):
            train(norm_stats=mode)
    else:
        with norm_stats_scope(mode):
            train()
    assert torch.equal(model[2].running_mean, before) == (mode == "frozen")
    # the weights trained either way
    assert not torch.equal(model[1].weight, _model().state_dict()["1.weight"])


def test_a_log_gets_a_few_bar_lines_not_one_per_epoch(monkeypatch, capsys):
    monkeypatch.setattr(progress_line, "is_terminal", lambda: False)
    fit(_model(), _batches(bs=64), cross_entropy(), partial(torch.optim.SGD, lr=0.1), "cpu", epochs=20,
        progress=True)
    out = capsys.readouterr()
    draws = (out.out + out.err).count("training epoch ")
    assert draws == 1, draws  # the final draw only (the run is shorter than the interval); every epoch start
    # and end redrew before


def test_end_to_end_benchmark_stopped_by_its_time_limit_still_records_a_partial_row(tmp_path):
    """The GPU suite's e2e stage is killed at its limit (SIGTERM from `timeout`): the methods finished so far
    must still make a row, marked partial, instead of nothing."""
    import signal
    results = tmp_path / "R.md"
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bench_end_to_end.py"), "--quick",
                             "--methods", "none,lra_npp,finetune", "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:  # the first method's row, printed as soon as it finished
        if line.lstrip().startswith("none "):
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest[-2000:]
    rows = [r for r in results.read_text().splitlines() if "bench_end_to_end" in r]
    assert len(rows) == 1 and "partial stopped by the time limit after" in rows[0]
    assert "of 3 methods" in rows[0]
