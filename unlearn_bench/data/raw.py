"""Raw arrays to a checked ``ImageData``: pixel layout and range, labels, classes present, one image shape,
mean/std, and the content fingerprint that enters every cache key; a stratified test split for data that
come without one. Each check names the problem and the fix in one line (``DataError``)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from unlearn_bench.data.sources import ImageData
from unlearn_bench.errors import DataError


def checked_images(x: np.ndarray, what: str) -> np.ndarray:
    """uint8 (N, C, H, W) from (N, H, W), (N, C, H, W) or (N, H, W, C) arrays of 0..255 or of [0, 1]
    floats."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"{what} has shape {x.shape}, not images; fix: store (N, H, W), (N, C, H, W) or "
                        f"(N, H, W, C) with C = 1 or 3")
    if len(x) == 0:
        raise DataError(f"{what} holds no images; fix: store at least one image per class")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{what} has dtype {x.dtype}; fix: store uint8 pixels (0..255) or floats in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise DataError(f"{what} holds NaN or inf pixels; fix: clean the array")
    if np.issubdtype(x.dtype, np.floating) and lo >= 0 and hi <= 1:
        return np.ascontiguousarray(np.round(x * 255.0).astype(np.uint8))
    if np.issubdtype(x.dtype, np.integer) and lo >= 0 and hi <= 255:
        return np.ascontiguousarray(x.astype(np.uint8))
    raise DataError(f"{what} ({x.dtype}) holds values in [{lo:g}, {hi:g}]; fix: store uint8 pixels (0..255) "
                    f"or floats in [0, 1]")


def checked_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what} has shape {y.shape} for {n} images; fix: store one integer label per image")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)):
            raise DataError(f"{what} has dtype {y.dtype}; fix: store integer class indices 0..C-1")
    if len(y) and y.min() < 0:
        raise DataError(f"{what} holds the negative label {int(y.min())}; fix: store class indices 0..C-1")
    return y.astype(np.int64)



def fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:16]


def from_arrays(name: str, xtr, ytr, xte, yte, num_classes: int | None = None, mean=None, std=None,
                augment: str = "none", source: str = "the data") -> ImageData:
    """Checked ImageData from raw arrays: pixel layout and range, labels in range, every class in training,
    train and test images of one shape; mean/std computed from the training images when not given."""
    xtr, xte = checked_images(xtr, f"{source}: x_train"), checked_images(xte, f"{source}: x_test")
    ytr = checked_labels(ytr, len(xtr), f"{source}: y_train")
    yte = checked_labels(yte, len(xte), f"{source}: y_test")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{source}: training images are {xtr.shape[1:]} (C, H, W) but test images are "
                        f"{xte.shape[1:]}; fix: store both splits at one size and channel count")
    seen = int(max(ytr.max(), yte.max() if len(yte) else 0)) + 1
    k = seen if num_classes is None else int(num_classes)
    if seen > k:
        raise DataError(f"{source}: label {seen - 1} is outside data.num_classes={k}; fix: set "
                        f"data.num_classes={seen} or correct the labels")
    present = np.unique(ytr)
    if len(present) < k:  # labels lie in 0..k-1, so fewer distinct ones means a class without images
        missing = np.setdiff1d(np.arange(min(k, len(present) + 10)), present)[:10].tolist()
        fix = (f"set data.num_classes={seen} or null" if np.array_equal(present, np.arange(seen))
               else "relabel to 0..C-1 without gaps or add their images")
        raise DataError(f"{source}: class(es) {missing} have no training image; fix: {fix}")
    if k < 2:
        raise DataError(f"{source}: a single class; fix: unlearning a class needs at least two")
    c = xtr.shape[1]
    scaled = xtr.reshape(len(xtr), c, -1).transpose(1, 0, 2).reshape(c, -1) / 255.0
    mean = tuple(float(v) for v in (scaled.mean(axis=1) if mean is None else mean))
    std = tuple(float(v) for v in (scaled.std(axis=1) if std is None else std))
    if len(mean) != c or len(std) != c or min(std) <= 0:
        raise DataError(f"{source}: data.mean / data.std need {c} value(s) with std > 0 (got {mean}, "
                        f"{std}); fix: set them to null to compute them from the training images")
    t = torch.from_numpy
    data = ImageData(name, t(xtr), t(ytr), t(xte), t(yte), k, mean, std, augment)
    data.fingerprint = fingerprint(xtr, ytr, xte, yte)
    return data


class TooFewToSplit(DataError):
    """Data without a test split hold too few images to draw one. Carries the per-class image counts, so
    that validation can state, in the same message, what the run's other settings ask of the data."""

    def __init__(self, problem: str, fix: str, counts: np.ndarray, test_fraction: float):
        super().__init__(f"{problem}; fix: {fix}")
        self.problem, self.fix, self.counts, self.test_fraction = problem, fix, counts, test_fraction


def split_off_test(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, source: str):
    """A stratified, seeded test split for data that come without one."""
    from sklearn.model_selection import train_test_split
    counts = np.bincount(y)
    single = np.flatnonzero(counts == 1).tolist()
    if single:
        raise TooFewToSplit(f"{source}: class(es) {single[:10]} have a single image, too few to split off a "
                            f"test set", "add images or provide a test split", counts, test_fraction)
    n_test, k = int(np.ceil(test_fraction * len(y))), int((counts > 0).sum())
    if n_test < k or len(y) - n_test < k:
        raise TooFewToSplit(f"{source}: data.test_fraction={test_fraction} of {len(y)} images leaves "
                            f"{min(n_test, len(y) - n_test)} for a split of {k} classes",
                            "provide a test split or set data.test_fraction so both splits hold at least one "
                            "image per class", counts, test_fraction)
    tr, te = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed)
    tr, te = np.sort(tr), np.sort(te)
    return x[tr], y[tr], x[te], y[te]
