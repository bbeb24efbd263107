import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearn_bench.data import Digits, TorchvisionImages
from unlearn_bench.data.batches import Normalizer, TensorBatches, random_crop_flip
from unlearn_bench.data.splits import Split, make_split
from unlearn_bench.errors import DataNotFoundError

FMNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


def test_digits_tensors():
    d = Digits().load()
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape[1:] == (1, 8, 8)
    assert len(d.train_x) + len(d.test_x) == 1797 and d.train_x.max() > 200
    assert set(d.train_y.unique().tolist()) == set(range(10))


def test_the_data_check_command_serves_digits(tmp_path):
    """``make run`` asks ``python -m unlearn_bench.data.check`` whether a dataset can serve the run; the
    bundled digits always can."""
    r = subprocess.run([sys.executable, "-m", "unlearn_bench.data.check", "digits", "--offline"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.skipif(not FMNIST_SYSTEM.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_system_package(tmp_path):
    src = TorchvisionImages("fashion_mnist", "FashionMNIST", 10, (0.286,), (0.353,),
                            system_dirs=[str(FMNIST_SYSTEM)], download=False)
    d = src.load(tmp_path)
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8 and np.bincount(d.train_y.numpy()).tolist() == [6000] * 10


def test_missing_dataset_offline_is_one_clear_line(tmp_path):
    src = TorchvisionImages("cifar10", "CIFAR10", 10, (0.5,) * 3, (0.5,) * 3, root=str(tmp_path / "nowhere"),
                            download=False)
    with pytest.raises(DataNotFoundError) as e:
        src.load(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "cifar10" in msg and "fix:" in msg and "data.root" in msg


def test_crop_flip_is_a_per_sample_translation_or_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    same = random_crop_flip(x, pad=0, flip=False, generator=g)
    assert torch.equal(same, x)
    flipped = random_crop_flip(x, pad=0, flip=True, generator=g)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    shifted = random_crop_flip(x, pad=2, flip=False, generator=g)
    assert shifted.shape == x.shape


def test_tensor_batches_cover_every_sample_once_per_pass():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.arange(10)
    b = TensorBatches(x, y, Normalizer((0.0,), (1.0,), "cpu"), batch_size=3, seed=1)
    assert len(b) == 4
    seen = torch.cat([yb for _, yb in b])
    assert sorted(seen.tolist()) == list(range(10))
    second = torch.cat([yb for _, yb in b])
    assert not torch.equal(seen, second)  # reshuffled every pass


@pytest.mark.parametrize("source", ["holdout", "test"])
def test_split_disjoint_and_unseen_never_trained(source, tmp_path):
    d = Digits().load()
    s = make_split(d.train_y.numpy(), d.test_y.numpy(), 10, [3, 5], source, 20, seed=0)
    tr, f, r = set(s.train_idx), set(s.forget_train), set(s.retain_train)
    assert f | r == tr and not f & r
    assert all(d.train_y[i] in (3, 5) for i in f) and all(d.train_y[i] not in (3, 5) for i in r)
    pool = set(s.unseen_of(range(10)).tolist())
    if source == "holdout":
        assert not pool & tr and len(pool) == 200
    else:
        assert not pool & (set(s.forget_test) | set(s.retain_test))
    s.save(tmp_path / "split.json")
    assert Split.load(tmp_path / "split.json") == s
    s2 = make_split(d.train_y.numpy(), d.test_y.numpy(), 10, [3, 5], source, 20, seed=1)
    assert s2.unseen != s.unseen


@pytest.mark.parametrize("key, n", [("train_limit", 5), ("test_limit", 449)])
def test_a_limit_that_cannot_keep_every_class_is_one_line(key, n):
    from unlearn_bench.errors import DataError
    with pytest.raises(DataError) as e:
        Digits(**{key: n}).load()  # 10 classes: a stratified subset needs 10 images on each side
    msg = str(e.value)
    assert "\n" not in msg and f"data.{key}={n} of " in msg and f"fix: set data.{key} between 10 and " in msg
