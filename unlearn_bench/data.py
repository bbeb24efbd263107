"""Datasets as tensors, loaded once.

Images are held as uint8 (N, C, H, W) tensors; batches are drawn by indexing tensors that live on the
training device (see ``batches.py``), so no per-sample Python transform runs in the hot path.
Sources are tried in order: ``root`` (if given), system dataset directories (Debian/Ubuntu packages such
as ``dataset-fashion-mnist``), the cache's data folder, then torchvision's downloader.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearn_bench.errors import DataNotFoundError


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
    fingerprint: str | None = None  # content hash of files a user supplies (data_files.py): part of cache keys

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.train_y.numpy(), minlength=self.num_classes)

    def limit(self, train: int | None, test: int | None, seed: int = 0) -> ImageData:
        """Keep stratified, seeded subsets of ``train`` training and ``test`` test images (quick runs)."""
        self.train_x, self.train_y = _stratified(self.train_x, self.train_y, train, seed)
        self.test_x, self.test_y = _stratified(self.test_x, self.test_y, test, seed)
        return self


def _stratified(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int):
    if n is None or n >= len(y):
        return x, y
    from sklearn.model_selection import train_test_split
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
                         10, self.mean, self.std).limit(self.train_limit, self.test_limit)


# torchvision class -> (file names that prove a folder holds it, folder torchvision expects)
_RAW_FILES = {
    "FashionMNIST": ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
    "MNIST": ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
}


class TorchvisionImages:
    """A torchvision dataset (MNIST, FashionMNIST, CIFAR10, CIFAR100, SVHN) converted to tensors once."""

    def __init__(self, name: str, dataset: str, num_classes: int, mean, std, root: str | None = None,
                 system_dirs: list[str] | tuple[str, ...] = (), download: bool = True, augment: str = "none",
                 install_hint: str = "", unseen_per_class: int = 100, train_limit: int | None = None,
                 test_limit: int | None = None):
        self.name, self.dataset, self.num_classes = name, dataset, num_classes
        self.mean, self.std, self.augment = tuple(mean), tuple(std), augment
        self.root, self.system_dirs, self.download = root, list(system_dirs), download
        self.install_hint, self.train_limit, self.test_limit = install_hint, train_limit, test_limit

    # -- source resolution -------------------------------------------------------------------------
    def _stage_system_copy(self, system_dir: Path, target_root: Path) -> bool:
        """Copy (gunzipping) IDX files from a system directory into ``<root>/<Dataset>/raw``."""
        files = _RAW_FILES.get(self.dataset)
        if not files or not system_dir.is_dir():
            return False
        raw = target_root / self.dataset / "raw"
        found = {}
        for f in files:
            for cand in (system_dir / f, system_dir / f"{f}.gz"):
                if cand.exists():
                    found[f] = cand
                    break
        if len(found) != len(files):
            return False
        raw.mkdir(parents=True, exist_ok=True)
        for f, src in found.items():
            dst = raw / f
            if dst.exists():
                continue
            tmp = dst.with_suffix(".tmp")
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            tmp.replace(dst)
        return True

    def _open(self, root: Path, download: bool):
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.dataset)
        if self.dataset == "SVHN":
            return (cls(str(root), split="train", download=download),
                    cls(str(root), split="test", download=download))
        return cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)

    def resolve(self, cache_dir: str | Path | None):
        """Return torchvision (train, test) datasets from the first source that works."""
        data_cache = Path(cache_dir or Path.home() / ".cache" / "unlearn-bench").expanduser() / "data"
        candidates: list[Path] = []
        if self.root:
            candidates.append(Path(self.root).expanduser())
        for d in self.system_dirs:
            if self._stage_system_copy(Path(d), data_cache):
                candidates.append(data_cache)
        candidates.append(data_cache)
        for root in candidates:
            try:
                return self._open(root, download=False)
            except (RuntimeError, FileNotFoundError, OSError):
                continue
        if self.download:
            try:
                return self._open(data_cache, download=True)
            except Exception as e:  # network errors come in many types
                reason = f"download failed ({type(e).__name__})"
        else:
            reason = "download disabled"
        tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
        raise DataNotFoundError(
            f"dataset {self.name} not found in {tried} and {reason}; fix: "
            f"{self.install_hint + ', or ' if self.install_hint else ''}"
            f"set data.root=DIR holding torchvision's {self.dataset} files, or run once with internet"
        )

    def load(self, cache_dir: str | Path | None = None) -> ImageData:
        train, test = self.resolve(cache_dir)
        (xtr, ytr), (xte, yte) = _to_tensors(train), _to_tensors(test)
        return ImageData(self.name, xtr, ytr, xte, yte, self.num_classes, self.mean, self.std,
                         self.augment).limit(self.train_limit, self.test_limit)


def _to_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision datasets keep their arrays in different layouts; bring them to uint8 NCHW + int64."""
    x = ds.data
    x = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    if x.ndim == 3:  # (N, H, W): MNIST family
        x = x[:, None]
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # (N, H, W, C): CIFAR
        x = x.permute(0, 3, 1, 2)
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels  # SVHN
    y = torch.as_tensor(np.asarray(labels)).long()
    return x.contiguous().to(torch.uint8), y
