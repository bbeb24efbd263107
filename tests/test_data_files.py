"""data=arrays (.npz) and data=folder (one folder per class): layouts, checks, cache keys, a run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from unlearn_bench.config import compose
from unlearn_bench.data.files import ArrayFile, ImageFolder, from_arrays
from unlearn_bench.errors import DataError, DataNotFoundError
from unlearn_bench.run import pipeline
from unlearn_bench.run.context import Setup


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return np.round(d.images * 255 / 16).astype(np.uint8), d.target


def _one_line(e, *fragments):
    msg = str(e.value)
    assert "\n" not in msg and "fix:" in msg and all(f in msg for f in fragments), msg


@pytest.mark.parametrize("layout", ["nhw", "nchw", "nhwc", "float01", "int64"])
def test_every_accepted_layout_gives_the_same_uint8_nchw_images(layout, digits):
    x, y = digits[0][:100], digits[1][:100]
    given = {"nhw": x, "nchw": x[:, None], "nhwc": x[..., None], "float01": x / 255.0,
             "int64": x.astype(np.int64)}[layout]
    d = from_arrays("t", given, y, given[:20], y[:20])
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape == (100, 1, 8, 8)
    assert np.array_equal(d.train_x.numpy()[:, 0], x) and d.num_classes == 10
    pixels = x / 255.0
    assert d.mean == pytest.approx((pixels.mean(),)) and d.std == pytest.approx((pixels.std(),))
    assert d.fingerprint == from_arrays("t", x, y, x[:20], y[:20]).fingerprint  # content, not layout


BAD = [
    ("shape", dict(xtr=np.zeros((4, 8, 8, 5), np.uint8)), "not images"),
    ("range", dict(xtr=np.full((4, 8, 8), 2.5)), "values in [2.5, 2.5]"),
    ("nan", dict(xtr=np.full((4, 8, 8), np.nan)), "NaN"),
    ("labels", dict(ytr=np.array([0, 1, 1])), "for 4 images"),
    ("negative", dict(ytr=np.array([0, 1, -1, 1])), "negative label -1"),
    ("float labels", dict(ytr=np.array([0, 1, 0.5, 1])), "integer class indices"),
    ("gap", dict(ytr=np.array([0, 2, 0, 2])), "class(es) [1] have no training image"),
    ("sizes", dict(xte=np.zeros((2, 9, 9), np.uint8)), "but test images are"),
    ("one class", dict(ytr=np.zeros(4, int), yte=np.zeros(2, int)), "a single class"),
    ("classes", dict(num_classes=1), "outside data.num_classes=1"),
    ("std", dict(std=[0.0]), "std > 0"),
]


@pytest.mark.parametrize("case, change, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_arrays_are_one_line_errors(case, change, fragment):
    args = dict(xtr=np.zeros((4, 8, 8), np.uint8), ytr=np.array([0, 1, 0, 1]),
                xte=np.zeros((2, 8, 8), np.uint8), yte=np.array([0, 1]))
    extra = {k: change.pop(k) for k in ("num_classes", "std") if k in change}
    args.update(change)
    with pytest.raises(DataError) as e:
        from_arrays("t", args["xtr"], args["ytr"], args["xte"], args["yte"], mean=None, **extra)
    _one_line(e, fragment)


def test_npz_file_checks(tmp_path, digits):
    x, y = digits
    with pytest.raises(DataNotFoundError) as e:
        ArrayFile("a", None).load()
    _one_line(e, "data.path is not set")
    with pytest.raises(DataNotFoundError) as e:
        ArrayFile("a", str(tmp_path / "nope.npz")).load()
    _one_line(e, "does not exist")
    np.savez(tmp_path / "keys.npz", images=x, labels=y)
    with pytest.raises(DataError) as e:
        ArrayFile("a", str(tmp_path / "keys.npz")).load()
    _one_line(e, "holds ['images', 'labels']")
    np.savez(tmp_path / "obj.npz", x_train=np.array([np.zeros(2), np.zeros(3)], dtype=object), y_train=y[:2])
    with pytest.raises(DataError) as e:
        ArrayFile("a", str(tmp_path / "obj.npz")).load()
    _one_line(e, "Python objects")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError) as e:
        ArrayFile("a", str(tmp_path / "text.npz")).load()
    _one_line(e, "not a readable .npz")


def test_npz_without_a_test_split_draws_a_stratified_one(tmp_path, digits):
    x, y = digits
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    d = ArrayFile("a", str(tmp_path / "d.npz"), test_fraction=0.25).load()
    assert len(d.test_y) == pytest.approx(0.25 * len(y), abs=1) and len(d.train_y) + len(d.test_y) == len(y)
    assert np.bincount(d.test_y.numpy()).min() >= 40  # every class in the test split
    limited = ArrayFile("a", str(tmp_path / "d.npz"), test_fraction=0.25, train_limit=200,
                        test_limit=50).load()
    assert len(limited.train_y) == 200 and len(limited.test_y) == 50 and limited.fingerprint == d.fingerprint


def test_cache_keys_follow_content_not_path(tmp_path, digits, cache_dir):
    x, y = digits
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y)
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y)  # the same content elsewhere
    x2 = x.copy()
    x2[0, 0, 0] ^= 1
    np.savez(tmp_path / "c.npz", x_train=x2, y_train=y)  # one pixel differs

    def spec(name):
        return Setup.from_config(compose(["data=arrays", f"data.path={tmp_path / name}", "model=mlp",
                                          f"cache_dir={cache_dir}"])).spec()
    assert spec("a.npz") == spec("b.npz") and spec("a.npz") != spec("c.npz")
    bundled = Setup.from_config(compose(["data=digits", f"cache_dir={cache_dir}"]))
    assert "fingerprint" not in bundled.spec()["data"]


def _write_folder(root, x, y, split: bool, rgb_sizes: bool = False):
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / (("test" if i % 4 == 0 else "train") if split else "") / f"class_{label}"
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        if rgb_sizes:
            im = im.convert("RGB").resize((8 + i % 2, 8))
        im.save(d / f"{i:04d}.png")


def test_image_folder_with_and_without_train_test(tmp_path, digits, monkeypatch):
    x, y = digits[0][:300], digits[1][:300]
    _write_folder(tmp_path / "split", x, y, split=True)
    d = ImageFolder(path=str(tmp_path / "split")).load(tmp_path / "cache")
    assert d.train_x.shape[1:] == (1, 8, 8) and len(d.train_y) + len(d.test_y) == 300 and d.num_classes == 10
    train_idx = [i for i in range(300) if i % 4]
    assert sorted(map(tuple, d.train_x.numpy()[:, 0].reshape(len(d.train_y), -1))) == \
        sorted(map(tuple, x[train_idx].reshape(len(train_idx), -1)))  # lossless PNG round trip
    # the decoded arrays are cached: a second load decodes nothing
    monkeypatch.setattr(ImageFolder, "_decode", lambda *a, **k: pytest.fail("decoded again"))
    again = ImageFolder(path=str(tmp_path / "split")).load(tmp_path / "cache")
    assert again.fingerprint == d.fingerprint
    monkeypatch.undo()
    _write_folder(tmp_path / "flat", x, y, split=False)
    flat = ImageFolder(path=str(tmp_path / "flat"), test_fraction=0.5).load(tmp_path / "cache")
    assert len(flat.test_y) == 150


def test_image_folder_errors(tmp_path, digits):
    x, y = digits[0][:40], digits[1][:40]
    _write_folder(tmp_path / "mixed", x, y, split=False, rgb_sizes=True)
    with pytest.raises(DataError) as e:  # 20% of 40 images is 8 test images for 10 classes
        ImageFolder(path=str(tmp_path / "mixed"), size=[8, 8]).load(tmp_path / "cache")
    _one_line(e, "data.test_fraction=0.2 of 40 images leaves 8 for a split of 10 classes")
    with pytest.raises(DataError) as e:
        ImageFolder(path=str(tmp_path / "mixed")).load(tmp_path / "cache")
    _one_line(e, "is 9x8 but", "data.size=[H,W]")
    d = ImageFolder(path=str(tmp_path / "mixed"), size=[8, 8], test_fraction=0.5).load(tmp_path / "cache")
    assert d.train_x.shape[1:] == (3, 8, 8)  # RGB files: three channels
    gray = ImageFolder(path=str(tmp_path / "mixed"), size=[8, 8], channels=1,
                       test_fraction=0.5).load(tmp_path / "c")
    assert gray.train_x.shape[1] == 1
    for bad in ([0, 8], [8], [8.5, 8]):
        with pytest.raises(DataError) as e:
            ImageFolder(path=str(tmp_path / "mixed"), size=bad).load(tmp_path / "cache")
        _one_line(e, "is not [height, width]")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        ImageFolder(path=str(tmp_path / "empty")).load(tmp_path / "cache")
    _one_line(e, "no images in class folders")
    (tmp_path / "mixed" / "class_0" / "broken.png").write_text("not a png")
    with pytest.raises(DataError) as e:
        ImageFolder(path=str(tmp_path / "mixed"), size=[8, 8], test_fraction=0.5).load(tmp_path / "cache")
    _one_line(e, "broken.png cannot be read")


def test_a_run_on_an_npz_file(tmp_path, digits, cache_dir):
    x, y = digits
    np.savez(tmp_path / "d.npz", x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:])
    cfg = compose(["data=arrays", f"data.path={tmp_path / 'd.npz'}", "model=mlp", "method=none",
                   "forget.classes=[3]", "train.epochs=3", "progress=false", f"cache_dir={cache_dir}"])
    m = pipeline.run(cfg, tmp_path / "run")
    assert m["status"] == "ok" and m["data"] == "arrays" and m["acc/forget_train"] > 0.5


def test_folder_edge_cases(tmp_path, digits):
    x, y = digits[0][:60], digits[1][:60] % 3
    # 16-bit grayscale PNGs are scaled to 8 bits (Pillow's own conversion would clip them at 255)
    wide = tmp_path / "wide"
    for i, (img, label) in enumerate(zip(x, y)):
        (wide / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.uint16) * 257).save(wide / f"c{label}" / f"{i:03d}.png")
    (wide / "c0" / "._0.png").write_bytes(b"resource fork")  # hidden: skipped, not an unreadable image
    d = ImageFolder(path=str(wide), test_fraction=0.5).load(tmp_path / "cache")
    assert d.train_x.shape[1] == 1 and int(d.train_x.max()) == int(x.max())
    loaded = d.train_x.numpy().ravel().tolist() + d.test_x.numpy().ravel().tolist()
    assert sorted(loaded) == sorted(x.ravel().tolist())
    # an unreadable file among grayscale images is one line, not Pillow's traceback
    (wide / "c1" / "bad.png").write_text("not a png")
    with pytest.raises(DataError) as e:
        ImageFolder(path=str(wide), test_fraction=0.5).load(tmp_path / "cache")
    _one_line(e, "bad.png cannot be read")
    # gray and RGB files together: three channels
    mix = tmp_path / "mix"
    for i, (img, label) in enumerate(zip(x, y)):
        (mix / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).convert("RGB" if i % 2 else "L").save(mix / f"c{label}" / f"{i:03d}.png")
    assert ImageFolder(path=str(mix), test_fraction=0.5).load(tmp_path / "cache").train_x.shape[1] == 3
    # class folders that happen to be called train and test, beside a third class
    named = tmp_path / "named"
    for i, (img, label) in enumerate(zip(x, y)):
        (named / ["train", "test", "zebra"][label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(named / ["train", "test", "zebra"][label] / f"{i:03d}.png")
    assert ImageFolder(path=str(named), test_fraction=0.5).load(tmp_path / "cache").num_classes == 3
    # a train/test layout whose test classes hold no image
    _write_folder(tmp_path / "split", x, y, split=True)
    for f in (tmp_path / "split" / "test").rglob("*.png"):
        f.unlink()
    with pytest.raises(DataError) as e:
        ImageFolder(path=str(tmp_path / "split")).load(tmp_path / "cache")
    _one_line(e, "no images in class folders under", "test")


def test_too_many_classes_says_which_setting_to_change():
    x, y = np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, 1])
    with pytest.raises(DataError) as e:
        from_arrays("t", x, y, x, y, num_classes=4)
    _one_line(e, "class(es) [2, 3] have no training image", "set data.num_classes=2 or null")


def test_a_replaced_file_is_not_a_finished_run_and_pools_by_content(tmp_path, digits, cache_dir):
    from unlearn_bench.run.identity import config_hash, setup_hash
    x, y = digits
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)

    def cfg(name):
        return compose(["data=arrays", f"data.path={tmp_path / name}", "model=mlp", f"cache_dir={cache_dir}"])
    before = config_hash(cfg("d.npz"))
    assert config_hash(cfg("d.npz")) == before
    np.savez(tmp_path / "d.npz", x_train=255 - x, y_train=y)  # replaced in place
    assert config_hash(cfg("d.npz")) != before  # a resumed sweep reruns it
    fp = Setup.from_config(cfg("d.npz")).data.fingerprint
    np.savez(tmp_path / "copy.npz", x_train=255 - x, y_train=y)
    copied = Setup.from_config(cfg("copy.npz")).data.fingerprint
    assert setup_hash(cfg("d.npz"), fp) == setup_hash(cfg("copy.npz"), copied)
    assert setup_hash(cfg("d.npz"), fp) != setup_hash(cfg("d.npz"), "another")


def test_a_forget_class_without_test_images_runs_and_warns(tmp_path, digits, cache_dir, caplog):
    x, y = digits
    test = (np.arange(len(y)) >= 1400) & (y != 3)  # class 3 only in training
    np.savez(tmp_path / "d.npz", x_train=x[:1400], y_train=y[:1400], x_test=x[test], y_test=y[test])
    cfg = compose(["data=arrays", f"data.path={tmp_path / 'd.npz'}", "model=mlp", "method=none",
                   "forget.classes=[3]", "train.epochs=2", "progress=false", f"cache_dir={cache_dir}"])
    with caplog.at_level("WARNING", logger="unlearn_bench"):
        m = pipeline.run(cfg, tmp_path / "run")
    assert m["status"] == "ok" and np.isnan(m["acc/forget_test"]) and m["acc/retain_test"] > 0.5
    assert "no test image of forget class(es) [3]" in caplog.text


def test_folder_stamp_follows_the_images_the_loader_reads(tmp_path, digits):
    from unlearn_bench.data.files import source_stamp
    x, y = digits[0][:30], digits[1][:30] % 3
    real = tmp_path / "real"
    _write_folder(real, x, y, split=False)
    linked = tmp_path / "linked"
    linked.mkdir()
    for c in sorted(real.iterdir()):
        (linked / c.name).symlink_to(c, target_is_directory=True)  # class folders that are symlinks
    cfg = {"_target_": "unlearn_bench.data.files.ImageFolder", "path": str(linked)}
    before = source_stamp(cfg)
    (linked / "class_0" / ".DS_Store").write_text("finder")  # not an image: ignored like the loader does
    assert source_stamp(cfg) == before
    f = next((real / "class_1").glob("*.png"))
    Image.fromarray(255 - np.asarray(Image.open(f))).save(f)  # rewritten behind the symlink
    assert source_stamp(cfg) != before
    assert source_stamp({"_target_": "unlearn_bench.data.Digits", "path": str(linked)}) is None


def test_32_bit_integer_tiffs_within_16_bits_are_scaled_and_beyond_are_refused(tmp_path, digits):
    x, y = digits[0][:40], digits[1][:40] % 2
    for i, (img, label) in enumerate(zip(x, y)):
        (tmp_path / "ok" / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.int32) * 257, "I").save(tmp_path / "ok" / f"c{label}" / f"{i}.tif")
    d = ImageFolder(path=str(tmp_path / "ok"), test_fraction=0.5).load(tmp_path / "cache")
    assert d.train_x.shape[1] == 1 and int(d.train_x.max()) == int(x.max())
    (tmp_path / "big" / "c0").mkdir(parents=True)
    (tmp_path / "big" / "c1").mkdir(parents=True)
    for c in (0, 1):
        for i in range(4):
            image = Image.fromarray(np.full((8, 8), 70000 + i, np.int32), "I")
            image.save(tmp_path / "big" / f"c{c}" / f"{i}.tif")
    with pytest.raises(DataError) as e:
        ImageFolder(path=str(tmp_path / "big"), test_fraction=0.5).load(tmp_path / "cache")
    _one_line(e, "32-bit integer pixels")


def test_an_image_past_pillows_size_limit_is_one_line(tmp_path, digits, monkeypatch):
    x, y = digits[0][:20], digits[1][:20] % 2
    _write_folder(tmp_path / "f", x, y, split=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 8x8 = 64 pixels > 2 x 10: Pillow raises, not warns
    with pytest.raises(DataError) as e:
        ImageFolder(path=str(tmp_path / "f"), test_fraction=0.5).load(tmp_path / "cache")
    _one_line(e, "more pixels than Pillow's safety limit", "MAX_IMAGE_PIXELS")
