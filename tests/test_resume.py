"""A cached model's training stopped part-way resumes from its last saved epoch and ends with the weights an
uninterrupted training gives; progress bars name the stage and the epoch out of the total."""

from __future__ import annotations

import functools
import logging

import pytest
import torch
from torch import nn

from unlearn_bench.data.batches import Normalizer, TensorBatches
from unlearn_bench.run.cache import ModelCache
from unlearn_bench.train.loop import Resume, cross_entropy, fit
from unlearn_bench.train.progress import EpochBar, describe

EPOCHS = 4


class Stop(Exception):
    pass


def _batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 3, (96,), generator=g)
    return TensorBatches(x, y, Normalizer([0.5], [0.25], "cpu"), batch_size=16, seed=7, augment="crop_flip")


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))


def _optimizer(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)


def _stopping_loss(stop_at_step: int | None):
    """Cross-entropy that raises ``Stop`` before the given step (as a time limit's signal would)."""
    ce, seen = cross_entropy(0.1), [0]

    def loss(model, batch):
        if seen[0] == stop_at_step:
            raise Stop
        seen[0] += 1
        return ce(model, batch)
    return loss


def _train(model, resume=None, stop_at_step=None):
    torch.manual_seed(123)  # the dropout draws of the first epoch
    return fit(model, _batches(), _stopping_loss(stop_at_step), _optimizer, "cpu", epochs=EPOCHS,
               schedule="cosine", progress=False, resume=resume)


def _same(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


def test_a_stopped_training_resumes_to_the_uninterrupted_weights(tmp_path, caplog):
    whole = _model(1)
    curve = _train(whole)
    resume = Resume(tmp_path / "k.partial.pt", "cache original/k", every_s=0)
    stopped = _model(1)
    with pytest.raises(Stop):
        _train(stopped, resume, stop_at_step=2 * 6 + 3)  # in the third epoch (6 batches per epoch)
    assert resume.path.exists()
    saved = torch.load(resume.path, weights_only=True)
    assert saved["epoch"] == 2 and saved["steps"] == 12
    again = _model(99)  # a new process starts from a new initialisation: the saved epoch replaces it
    with caplog.at_level(logging.INFO, logger="unlearn_bench"):
        resumed_curve = _train(again, resume)
    assert "cache original/k: resuming from epoch 2 of 4" in caplog.text
    assert resumed_curve == curve
    assert _same(again, whole)


def test_without_a_saved_epoch_the_training_is_the_plain_one(tmp_path):
    whole = _model(1)
    _train(whole)
    resume = Resume(tmp_path / "k.partial.pt", "cache original/k", every_s=3600)  # never due
    again = _model(1)
    _train(again, resume)
    assert _same(again, whole) and not resume.path.exists()


def test_the_last_epoch_is_not_saved(tmp_path):
    resume = Resume(tmp_path / "k.partial.pt", "cache original/k", every_s=0)
    _train(_model(1), resume)
    assert torch.load(resume.path, weights_only=True)["epoch"] == EPOCHS - 1


def test_a_damaged_saved_epoch_trains_from_the_start(tmp_path, caplog):
    whole = _model(1)
    _train(whole)
    resume = Resume(tmp_path / "k.partial.pt", "cache original/k", every_s=3600)
    resume.path.write_bytes(b"not a checkpoint")
    again = _model(1)
    with caplog.at_level(logging.WARNING):
        _train(again, resume)
    assert "saved epoch unreadable" in caplog.text
    assert _same(again, whole)


def _cache_train(stop_at_step, calls):
    def train(model, resume):
        calls.append(resume)
        resume.every_s = 0
        _train(model, resume, stop_at_step)
        return {}
    return train


def test_the_cache_resumes_an_entry_and_removes_its_saved_epoch(tmp_path):
    cache, calls = ModelCache(tmp_path), []
    with pytest.raises(Stop):
        cache.get_or_train("original", {"s": 1}, functools.partial(_model, 1), _cache_train(9, calls),
                           resumable=True)
    partial = calls[0].path
    assert partial.name.endswith(".partial.pt") and partial.exists()
    model, meta, hit = cache.get_or_train("original", {"s": 1}, functools.partial(_model, 5),
                                          _cache_train(None, calls), resumable=True)
    assert not hit and not partial.exists()
    assert meta["resumed_from_epoch"] == 1 and meta["train_s"] >= calls[1].prior_s > 0
    whole = _model(1)
    _train(whole)
    assert _same(model, whole)


def test_a_plain_training_callable_still_works(tmp_path):
    model, _, hit = ModelCache(tmp_path).get_or_train("original", {"s": 2}, lambda: nn.Linear(3, 2),
                                                      lambda m: {})
    assert not hit and isinstance(model, nn.Linear)


def test_the_bar_names_the_stage_and_the_epoch_of_the_whole_training():
    bar = EpochBar("oracle", 6, first_epoch=2, epochs=5, interval=60.0)
    assert bar.desc == "oracle epoch 3/5"
    bar.start_epoch(1)
    assert bar.desc == "oracle epoch 4/5"
    assert describe("ssd", 2) == "ssd epoch 2"


def test_a_log_gets_the_stage_and_no_empty_bar(capsys):
    """stdout is not a terminal under pytest: the log form of the bar draws its final state only."""
    torch.manual_seed(0)
    fit(_model(1), _batches(), cross_entropy(), _optimizer, "cpu", epochs=2, progress="original")
    out = capsys.readouterr().out
    assert "original epoch 2/2" in out
    assert "0/?" not in out and "Training" not in out


def _cli(tmp_path, *args, cache="c"):
    import os
    import subprocess
    import sys
    env = {**os.environ, "UNLEARN_BENCH_CHECKPOINT_EVERY_S": "0", "WANDB_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "unlearn_bench.cli", "data=digits", "model=mlp",
                             "method=none", "progress=false", "train.epochs=150",
                             f"runs_dir={tmp_path}/runs-{cache}", f"cache_dir={tmp_path}/{cache}", *args],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_resumes_its_original_and_ends_as_an_uninterrupted_one(tmp_path):
    import json
    import signal
    import time
    p = _cli(tmp_path)
    t0 = time.time()
    while not list(tmp_path.glob("c/original/*.partial.pt")):
        assert p.poll() is None and time.time() - t0 < 240, p.communicate()[0][-2000:]
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)  # what a time limit sends
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert not list(tmp_path.glob("c/original/*.json")), "training finished before the signal"
    again = _cli(tmp_path)
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0, log[-2000:]
    assert "resuming from epoch" in log
    assert not list(tmp_path.glob("c/original/*.partial.pt"))
    whole = _cli(tmp_path, cache="fresh")
    assert whole.communicate(timeout=300)[0] and whole.returncode == 0
    [a] = (tmp_path / "runs-c").rglob("metrics.json")
    [b] = (tmp_path / "runs-fresh").rglob("metrics.json")
    ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
    keys = [k for k in mb if k.startswith(("acc/", "original/acc/"))]
    assert keys and all(ma[k] == mb[k] for k in keys)


def test_a_saved_epoch_that_no_longer_fits_is_discarded_and_training_starts_over(tmp_path, caplog):
    resume = Resume(tmp_path / "k.partial.pt", "cache original/k", every_s=0)
    other = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    with pytest.raises(Stop):
        _train(other, resume, stop_at_step=8)  # an architecture changed under the same cache key
    whole = _model(1)
    _train(whole)
    again = _model(1)
    with caplog.at_level(logging.WARNING):
        _train(again, Resume(resume.path, "cache original/k", every_s=3600))
    assert "does not fit this training" in caplog.text and not resume.path.exists()
    assert _same(again, whole)


def test_a_resumed_training_counts_the_time_spent_before_it(tmp_path):
    resume = Resume(tmp_path / "k.partial.pt", "cache original/k", every_s=0)
    with pytest.raises(Stop):
        _train(_model(1), resume, stop_at_step=15)
    spent = float(torch.load(resume.path, weights_only=True)["elapsed_s"])
    again = Resume(resume.path, "cache original/k", every_s=0)
    _train(_model(1), again)
    assert spent > 0 and again.prior_s == spent and again.resumed_from == 2


def test_a_saved_epoch_missing_a_field_leaves_the_random_state_as_it_was(tmp_path):
    resume = Resume(tmp_path / "k.partial.pt", "cache original/k", every_s=0)
    with pytest.raises(Stop):
        _train(_model(1), resume, stop_at_step=8)
    state = torch.load(resume.path, weights_only=True)
    del state["steps"]
    torch.save(state, resume.path)
    whole = _model(1)
    _train(whole)
    again = _model(1)
    _train(again, Resume(resume.path, "cache original/k", every_s=3600))  # restarts; batch order untouched
    assert _same(again, whole)
