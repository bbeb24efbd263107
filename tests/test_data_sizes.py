"""Your own data too small for the run: every shortfall (unseen pool, N, test split) named in one message
with the sizes needed and the settings that fit (data=arrays and data=folder)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from test_data_files import _one_line, _write_folder

from unlearn_bench.config import compose
from unlearn_bench.data.files import ArrayFile
from unlearn_bench.errors import DataError


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return np.round(d.images * 255 / 16).astype(np.uint8), d.target


def _per_class(digits, n: int, classes: int = 10):
    x, y = digits
    idx = np.concatenate([np.flatnonzero(y == c)[:n] for c in range(classes)])
    return x[idx], y[idx]


def _too_small(cache_dir, monkeypatch, *overrides):
    """The message validation gives for ``overrides`` (None when they validate); training is refused."""
    from unlearn_bench.errors import UnlearnBenchError
    from unlearn_bench.run import models
    from unlearn_bench.run.validate import validate_config
    monkeypatch.setattr(models, "fit", lambda *a, **k: pytest.fail("validation trained something"))
    try:
        validate_config(compose(["model=mlp", "progress=false", f"cache_dir={cache_dir}", *overrides]))
    except UnlearnBenchError as e:
        assert "\n" not in str(e) and str(e).count("fix:") == 1, str(e)
        return str(e)
    return None


def test_an_npz_too_small_for_pool_and_n_names_both_and_the_fix_that_serves_both(tmp_path, digits, cache_dir,
                                                                                monkeypatch):
    x, y = _per_class(digits, 50)  # no test split: 0.2 of it is drawn, leaving 40 training images per class
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    data = ["data=arrays", f"data.path={tmp_path / 'd.npz'}", "method=lra_npp"]
    msg = _too_small(cache_dir, monkeypatch, *data)  # the defaults: a pool of 40 per class, N = 36
    head = f"data.path={tmp_path / 'd.npz'} holds too few images for these settings (2 problems)"
    assert msg.startswith(head), msg
    assert "(1) forget.unseen.per_class=40 needs >= 80 training images in every class" in msg
    assert "(2) method.n=36 needs a pool of >= 36 unseen images of forget class(es) [0]" in msg
    assert "has 40" in msg and "about 100 in the file, before data.test_fraction=0.2" in msg
    assert "fix: set forget.unseen.per_class=20 and method.n<=20, or give every class >= 80 training" in msg
    # the settings the message names are enough: nothing else is reported afterwards
    assert _too_small(cache_dir, monkeypatch, *data, "forget.unseen.per_class=20", "method.n=20") is None
    # one problem left reads as one line without a list
    one = _too_small(cache_dir, monkeypatch, *data, "forget.unseen.per_class=20")
    assert one.startswith("method.n=36 needs a pool of >= 36") and "problems" not in one
    assert "fix: set method.n<=20, or give every class >= 72 training images" in one


def test_a_folder_too_small_for_pool_and_n_names_both(tmp_path, digits, cache_dir, monkeypatch):
    x, y = _per_class(digits, 10, classes=3)
    _write_folder(tmp_path / "f", x, y, split=False)  # 10 PNGs per class; 8 train after the drawn split
    data = ["data=folder", f"data.path={tmp_path / 'f'}", "method=lra_npp_auto"]
    msg = _too_small(cache_dir, monkeypatch, *data)
    assert "(2 problems)" in msg and "has 8" in msg
    assert "about 100 in the file, before data.test_fraction=0.2" in msg
    assert "method.n=20 needs a pool of >= 39 unseen images" in msg  # h=auto analyses half the pool
    assert "fix: set forget.unseen.per_class=4 and method.n<=2" in msg
    assert _too_small(cache_dir, monkeypatch, *data, "forget.unseen.per_class=4", "method.n=2") is None


def test_a_file_too_small_to_split_also_names_the_pool_and_n(tmp_path, digits, cache_dir, monkeypatch):
    x, y = _per_class(digits, 4)  # 40 images: 0.2 of them cannot give each of 10 classes a test image
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    msg = _too_small(cache_dir, monkeypatch, "data=arrays", f"data.path={tmp_path / 'd.npz'}",
                     "method=lra_npp")
    assert "(3 problems): (1) data.test_fraction=0.2 of 40 images leaves 8 for a split of 10 classes" in msg
    assert "(2) forget.unseen.per_class=40 needs >= 80 training images" in msg and "(3) method.n=36" in msg
    assert "fix: provide a test split or set data.test_fraction" in msg
    with pytest.raises(DataError) as e:  # the loader alone still says only what it knows
        ArrayFile("a", str(tmp_path / "d.npz")).load()
    _one_line(e, "leaves 8 for a split of 10 classes")


def test_a_pool_from_the_test_split_counts_test_images(tmp_path, digits, cache_dir, monkeypatch):
    x, y = _per_class(digits, 50)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    msg = _too_small(cache_dir, monkeypatch, "data=arrays", f"data.path={tmp_path / 'd.npz'}", "method=none",
                     "forget.unseen.source=test")  # 10 test images per class
    assert msg.startswith("forget.unseen.per_class=40 needs >= 80 test images in every class")
    assert "has 10" in msg and "set forget.unseen.per_class<=5" in msg and "about 400 in the file" in msg
