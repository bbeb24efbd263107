"""Your own images: one ``.npz`` file of arrays (``data=arrays``) or a folder per class (``data=folder``).

Both become the same uint8 (N, C, H, W) tensors as the bundled datasets, after checks that name the
problem and the fix in one line (``DataError``). The images' content, not their path, enters the cache
key of every model trained on them (``ImageData.fingerprint``), so replacing a file retrains.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np

from unlearn_bench.data.raw import (
    TooFewToSplit,
    checked_images,
    checked_labels,
    fingerprint,
    from_arrays,
    split_off_test,
)
from unlearn_bench.data.sources import ImageData
from unlearn_bench.errors import DataError, DataNotFoundError, one_line

# checked arrays (``raw``) are part of this module's interface: tests and validation import them from here
__all__ = ["IMAGE_EXTENSIONS", "ArrayFile", "ImageFolder", "TooFewToSplit", "fingerprint", "from_arrays",
           "source_stamp"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _listing_stamp(files) -> list:
    """What identifies files without reading them: name, size, modification and change times (a copy that
    keeps the modification time still gets a new change time)."""
    out = []
    for f in files:
        st = f.stat()
        out.append((str(f), st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return out


def source_stamp(data_cfg: dict) -> str | None:
    """A cheap stamp of a user's data files (stat only, nothing read) for the run's config hash, so a run
    over replaced files is not taken as complete; None for the bundled datasets or a missing path."""
    target = str(data_cfg.get("_target_", ""))
    if not target.startswith(__name__ + ".") or not data_cfg.get("path"):
        return None
    p = Path(os.path.expanduser(str(data_cfg["path"])))
    if not p.exists():
        return None
    try:  # the files the loader reads, found the way it finds them
        files = [f for fs in ImageFolder.files(p).values() for _, f in fs] if p.is_dir() else [p]
        return hashlib.sha256(repr(_listing_stamp(files)).encode()).hexdigest()[:16]
    except (DataError, OSError):
        return None  # loading reports the problem in one line


class _FileSource:
    """What ``data=arrays`` and ``data=folder`` share: the path check, limits and the test split."""

    def __init__(self, name: str, path: str | None, num_classes: int | None = None, mean=None, std=None,
                 augment: str = "none", test_fraction: float = 0.2, split_seed: int = 0,
                 unseen_per_class: int = 40, train_limit: int | None = None, test_limit: int | None = None):
        self.name, self.path, self.num_classes = name, path, num_classes
        self.mean, self.std, self.augment = mean, std, augment
        self.test_fraction, self.split_seed = test_fraction, split_seed
        self.train_limit, self.test_limit = train_limit, test_limit

    example, what = "data.npz", ".npz file"  # how error messages name the expected path

    def resolve(self, cache_dir=None) -> Path:
        if not self.path:
            raise DataNotFoundError(f"data.path is not set; fix: data.path=/path/to/your/{self.example}")
        p = Path(os.path.expanduser(str(self.path)))
        if not p.exists():
            raise DataNotFoundError(f"data.path={self.path} does not exist; fix: point data.path at your "
                                    f"{self.what}")
        return p

    def _finish(self, xtr, ytr, xte, yte, source: str) -> ImageData:
        drawn = xte is None
        if drawn:
            x = checked_images(xtr, f"{source}: x_train")
            y = checked_labels(ytr, len(x), f"{source}: y_train")
            xtr, ytr, xte, yte = split_off_test(x, y, self.test_fraction, self.split_seed, source)
        data = from_arrays(self.name, xtr, ytr, xte, yte, self.num_classes, self.mean, self.std, self.augment,
                           source)
        data.drawn_test_fraction = self.test_fraction if drawn else None
        return data.limit(self.train_limit, self.test_limit)  # the fingerprint stays the whole data's


class ArrayFile(_FileSource):
    """Images and labels from one ``.npz``: ``x_train``, ``y_train`` and, optionally, ``x_test``, ``y_test``
    (without them a stratified ``test_fraction`` becomes the test split). Loaded without pickle."""

    def load(self, cache_dir=None) -> ImageData:
        p = self.resolve(cache_dir)
        try:
            z = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"data.path={self.path} is not a readable .npz ({type(e).__name__}); fix: save "
                            f"it with numpy.savez(path, x_train=..., y_train=..., x_test=..., "
                            f"y_test=...)") from e
        with z:
            keys = set(z.files)
            need = {"x_train", "y_train"}
            if not need <= keys or (("x_test" in keys) != ("y_test" in keys)):
                raise DataError(f"data.path={self.path} holds {sorted(keys)}; fix: store x_train and "
                                f"y_train, and x_test with y_test or neither (a test split is then drawn)")
            try:
                arrays = [z[k] if k in keys else None for k in ("x_train", "y_train", "x_test", "y_test")]
            except ValueError as e:  # object arrays would need pickle
                raise DataError(f"data.path={self.path} stores Python objects; fix: store numeric "
                                f"arrays") from e
        return self._finish(*arrays, source=f"data.path={self.path}")


@contextlib.contextmanager
def _readable(f: Path):
    """Pillow's failures on one file as one line: unreadable, or larger than its decompression-bomb limit."""
    from PIL import Image
    try:
        yield
    except Image.DecompressionBombError as e:
        raise DataError(f"{f} has more pixels than Pillow's safety limit ({one_line(e, 120)}); fix: shrink "
                        f"the image, or raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted") from e
    except (OSError, ValueError) as e:
        raise DataError(f"{f} cannot be read as an image ({type(e).__name__}); fix: remove or replace "
                        f"it") from e


class ImageFolder(_FileSource):
    """A folder with one sub-folder of images per class (class index = sorted folder names), either
    directly or in ``train/`` and ``test/`` sub-folders with the same class names. Images are decoded once
    with Pillow, resized to ``size`` when given, and cached as arrays under the cache directory."""

    example, what = "folder", "image folder"

    def __init__(self, name: str = "folder", path: str | None = None, size=None, channels: str | int = "auto",
                 **kw):
        super().__init__(name, path, **kw)
        self.size = None if size is None else tuple(size)
        self.channels = channels

    @staticmethod
    def _listing(root: Path) -> dict[str, list[Path]]:
        """Class folder -> its image files (hidden files and folders skipped, e.g. macOS' ``._x.png``)."""
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        return {c: sorted(f for f in (root / c).rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS
                          and not any(part.startswith(".") for part in f.relative_to(root / c).parts))
                for c in classes}

    @staticmethod
    def _open(f: Path):
        """The image as Pillow reads it, 16-bit gray scaled to 8 bits (Pillow's own conversion clips)."""
        from PIL import Image
        with _readable(f):
            im = Image.open(f)
            im.load()
        if im.mode.startswith("I"):  # 16-bit gray (Pillow says I;16 or, in some versions, I)
            a = np.asarray(im).astype(np.float64)
            if a.min() < 0 or a.max() > 65535:
                raise DataError(f"{f} holds 32-bit integer pixels; fix: save 8- or 16-bit images, or pass "
                                f"the arrays with data=arrays")
            return Image.fromarray(np.round(a * (255.0 / 65535.0)).astype(np.uint8), "L")
        if im.mode == "F":
            raise DataError(f"{f} holds floating-point pixels; fix: save 8- or 16-bit images, or pass the "
                            f"arrays with data=arrays")
        return im

    @staticmethod
    def _header_mode(f: Path) -> str:
        """The image's mode from its header alone (the probe for channels=auto decodes nothing)."""
        from PIL import Image
        with _readable(f), Image.open(f) as im:
            return im.mode

    def _decode(self, files: list[Path], mode: str, what: str) -> np.ndarray:
        from PIL import Image
        from tqdm.auto import tqdm
        out, first = [], None
        for f in tqdm(files, desc=f"decoding {what}", unit="img", disable=len(files) < 2000, mininterval=1.0):
            im = self._open(f).convert(mode)
            if self.size is not None:
                im = im.resize((self.size[1], self.size[0]), Image.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
            if first is None:
                first = (a.shape, f)
            elif a.shape != first[0]:
                raise DataError(f"{f} is {a.shape[1]}x{a.shape[0]} but {first[1]} is "
                                f"{first[0][1]}x{first[0][0]}; fix: set data.size=[H,W] to resize every "
                                f"image")
            out.append(a)
        x = np.stack(out)
        return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)

    @staticmethod
    def _is_split(root: Path) -> bool:
        """train/ and test/ of class folders, and nothing else: otherwise folders named train and test are
        classes like any other."""
        subdirs = {d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
        return subdirs == {"train", "test"} and any(d.is_dir() for d in (root / "train").iterdir())

    @classmethod
    def files(cls, root: Path) -> dict[str, list[tuple[int, Path]]]:
        """Split -> (class index, image file) for every image the loader reads under ``root``."""
        files, _ = cls._files(root)
        return files

    @classmethod
    def _files(cls, root: Path):
        split = cls._is_split(root)
        parts = {"train": cls._listing(root / "train"), "test": cls._listing(root / "test")} if split \
            else {"train": cls._listing(root)}
        classes = list(parts["train"])
        if split and not set(parts["test"]) <= set(classes):
            extra = sorted(set(parts["test"]) - set(classes))
            raise DataError(f"{root}/test has class folder(s) {extra[:5]} that train/ lacks; fix: use the "
                            f"same class folder names in both")
        files = {s: [(i, f) for i, c in enumerate(classes) for f in listing.get(c, [])]
                 for s, listing in parts.items()}
        for part, fs in files.items():
            if not fs:
                where = root / part if split else root
                raise DataError(f"no images in class folders under {where}; fix: put images "
                                f"({', '.join(IMAGE_EXTENSIONS[:4])}, ...) in one folder per class")
        return files, classes

    def load(self, cache_dir=None) -> ImageData:
        if self.size is not None and not (len(self.size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.size)):
            raise DataError(f"data.size={list(self.size)!r} is not [height, width]; fix: e.g. "
                            f"data.size=[32,32], or null to keep the images' own size")
        root = self.resolve(cache_dir)
        if not root.is_dir():
            raise DataError(f"data.path={self.path} is not a folder; fix: point it at a folder of class "
                            f"folders")
        files, classes = self._files(root)
        every = [f for fs in files.values() for _, f in fs]
        mode = {"auto": None, "1": "L", "3": "RGB", 1: "L", 3: "RGB"}.get(self.channels, "bad")
        if mode == "bad":
            raise DataError(f"data.channels={self.channels!r}; fix: use auto, 1 or 3")
        # the decoded arrays are reused while no file is added, removed, rewritten or touched
        stamp = repr((str(root.resolve()), self.size, mode, _listing_stamp(every)))
        key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
        cache = Path(cache_dir or Path.home() / ".cache" / "unlearn-bench").expanduser()
        cached = cache / "data" / f"folder-{key}.npz"
        if cached.exists():
            with np.load(cached, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            if mode is None:  # grayscale only when every image is (16-bit ones included)
                gray = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")
                mode = "L" if all(self._header_mode(f) in gray for f in every) else "RGB"
            arrays = {}
            for s, fs in files.items():
                arrays[f"x_{s}"] = self._decode([f for _, f in fs], mode, f"{s} images")
                arrays[f"y_{s}"] = np.array([i for i, _ in fs], dtype=np.int64)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(cached)
        if self.num_classes is None:  # an empty class folder is still a class: from_arrays then says so
            self.num_classes = len(classes)
        return self._finish(arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"),
                            source=f"data.path={self.path}")
