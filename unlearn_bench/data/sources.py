"""Datasets as tensors, loaded once.

Images are held as uint8 (N, C, H, W) tensors; batches are drawn by indexing tensors that live on the
training device (see ``batches.py``), so no per-sample Python transform runs in the hot path.
Sources are tried in order: ``root`` (if given), system dataset directories (Debian/Ubuntu packages such
as ``dataset-fashion-mnist``), the cache's data folder, then torchvision's downloader; every copy is read
from its published file format by ``formats.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import unlearn_bench.data.formats as read_formats
from unlearn_bench.errors import DataError, DataNotFoundError


@dataclass
class ImageData:
    """A dataset's train and test splits as tensors, plus what the harness needs to know about it."""

    name: str
    train_x: torch.Tensor  # uint8 (N, C, H, W)
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"  # "none" | "crop_flip" | "crop"
    # content hash of the files a user supplies (data/raw.py): part of cache keys
    fingerprint: str | None = None
    drawn_test_fraction: float | None = None  # the test split is this share of data that came without one

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.train_y.numpy(), minlength=self.num_classes)

    def limit(self, train: int | None, test: int | None, seed: int = 0) -> ImageData:
        """Keep stratified, seeded subsets of ``train`` training and ``test`` test images (quick runs)."""
        self.train_x, self.train_y = _stratified(self.train_x, self.train_y, train, seed)
        self.test_x, self.test_y = _stratified(self.test_x, self.test_y, test, seed, "data.test_limit")
        return self


def _stratified(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int, what: str = "data.train_limit"):
    if n is None or n >= len(y):
        return x, y
    from sklearn.model_selection import train_test_split
    k = int((torch.bincount(y) > 0).sum())
    if n < k or len(y) - n < k:  # sklearn's stratified draw needs a class's worth on both sides
        raise DataError(f"{what}={n} of {len(y)} images cannot keep every one of {k} classes in a stratified "
                        f"subset; fix: set {what} between {k} and {len(y) - k}, or null for every image")
    keep, _ = train_test_split(np.arange(len(y)), train_size=int(n), stratify=y.numpy(), random_state=seed)
    keep = torch.from_numpy(np.sort(keep))
    return x[keep].contiguous(), y[keep].contiguous()


class Digits:
    """scikit-learn's bundled 8x8 digits (1,797 images; always offline). There is no official test split:
    a stratified, seeded ``test_fraction`` of the images becomes the test split."""

    def __init__(self, name: str = "digits", test_fraction: float = 0.25, split_seed: int = 0,
                 mean=(0.3,), std=(0.37,), unseen_per_class: int = 40, train_limit: int | None = None,
                 test_limit: int | None = None):
        self.name, self.test_fraction, self.split_seed = name, test_fraction, split_seed
        self.train_limit, self.test_limit = train_limit, test_limit
        self.mean, self.std = tuple(mean), tuple(std)

    def load(self, cache_dir: str | Path | None = None) -> ImageData:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        tr, te = train_test_split(np.arange(len(x)), test_size=self.test_fraction,
                                  stratify=d.target, random_state=self.split_seed)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        return ImageData(self.name, t(x[tr]), t(d.target[tr]).long(), t(x[te]), t(d.target[te]).long(),
                         10, self.mean, self.std, drawn_test_fraction=self.test_fraction
                         ).limit(self.train_limit, self.test_limit)


class TorchvisionImages:
    """A torchvision dataset (MNIST, FashionMNIST, CIFAR10, CIFAR100, SVHN) read from its published file
    format (``formats.py``) and converted to tensors once; torchvision is used only to download."""

    def __init__(self, name: str, dataset: str, num_classes: int, mean, std, root: str | None = None,
                 system_dirs: list[str] | tuple[str, ...] = (), download: bool = True, augment: str = "none",
                 install_hint: str = "", unseen_per_class: int = 100, train_limit: int | None = None,
                 test_limit: int | None = None):
        self.name, self.dataset, self.num_classes = name, dataset, num_classes
        self.mean, self.std, self.augment = tuple(mean), tuple(std), augment
        self.root, self.system_dirs, self.download = root, list(system_dirs), download
        self.install_hint, self.train_limit, self.test_limit = install_hint, train_limit, test_limit

    def _download(self, root: Path) -> None:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.dataset)
        svhn = self.dataset == "SVHN"
        splits = [{"split": "train"}, {"split": "test"}] if svhn else [{"train": True}, {"train": False}]
        # torchvision checks each file's md5 as it downloads; the arrays are read afterwards
        for kw in splits:
            cls(str(root), download=True, **kw)

    def resolve(self, cache_dir: str | Path | None) -> read_formats.Arrays:
        """(train x, train y, test x, test y) arrays from the first source holding the dataset: ``root``, the
        system directories, the cache's data folder, then a download into that folder."""
        data_cache = Path(cache_dir or Path.home() / ".cache" / "unlearn-bench").expanduser() / "data"
        candidates = [Path(self.root).expanduser()] if self.root else []
        candidates += [Path(d) for d in self.system_dirs] + [data_cache]
        for root in candidates:
            arrays = read_formats.read_dataset(self.dataset, root)
            if arrays is not None:
                return arrays
        if self.download:
            try:
                self._download(data_cache)
            except Exception as e:  # network errors come in many types
                reason = f"download failed ({type(e).__name__})"
            else:
                arrays = read_formats.read_dataset(self.dataset, data_cache)
                if arrays is not None:
                    return arrays
                reason = "the download left no readable copy"
        else:
            reason = "download disabled"
        tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
        raise DataNotFoundError(
            f"dataset {self.name} not found in {tried} and {reason}; fix: "
            f"{self.install_hint + ', or ' if self.install_hint else ''}"
            f"set data.root=DIR holding torchvision's {self.dataset} files, or run once with internet"
        )

    def load(self, cache_dir: str | Path | None = None) -> ImageData:
        xtr, ytr, xte, yte = self.resolve(cache_dir)
        for split, y in (("training", ytr), ("test", yte)):
            if len(y) and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes:
                raise DataError(f"{self.name}'s {split} labels span {int(y.min())}..{int(y.max())}, outside "
                                f"0..{self.num_classes - 1}; fix: set data.num_classes to the dataset's "
                                f"class count")
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        return ImageData(self.name, t(xtr), t(ytr).long(), t(xte), t(yte).long(), self.num_classes, self.mean,
                         self.std, self.augment).limit(self.train_limit, self.test_limit)
