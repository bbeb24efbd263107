"""Readers for the published on-disk formats of MNIST / Fashion-MNIST (IDX, raw or gzipped), CIFAR-10 /
CIFAR-100 (python pickle batches plus their meta file) and SVHN (MATLAB ``.mat``).

torchvision stays the downloader, but its datasets check each file's md5 against the published one, so they
refuse a copy that is re-compressed, trimmed or written elsewhere; reading the formats here lets any copy a
user already has be read as it is, offline, and reports a damaged file in one line naming it.
CIFAR's pickles are read with an unpickler that resolves only the four globals the published files name
(numpy's array reconstruction), so a pickle naming anything else is refused before it can run code.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from unlearn_bench.errors import DataError, one_line

# train x (N, C, H, W) uint8, train y, test x, test y
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

MAX_IDX_BYTES = 2**32  # far above any MNIST-format file (MNIST train images: 47 MB)
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# torchvision's folder name, train files, test files, meta file, label key, class-name key in the meta file
CIFAR = {"CIFAR10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                     "batches.meta", "labels", "label_names"),
         "CIFAR100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names")}
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
_REDOWNLOAD = "fix: delete it and download the dataset again (or point data.root at an intact copy)"


def _damaged(path: Path, why) -> DataError:
    return DataError(f"{path} cannot be read ({one_line(why, 160)}); {_REDOWNLOAD}")


# -- MNIST family: IDX ----------------------------------------------------------------------------------
def _idx_path(folder: Path, stem: str) -> Path | None:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def read_idx(path: Path) -> np.ndarray:
    """One IDX file of unsigned bytes (LeCun et al.'s MNIST format): magic 0 0 8 ndim, ndim big-endian
    int32 sizes, then the data."""
    try:  # the header first, then exactly the bytes it promises: a gzip bomb is never inflated whole
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or not 1 <= magic[3] <= 4:
                raise _damaged(path, f"not an IDX file of unsigned bytes: header {magic.hex() or 'empty'}")
            sizes = f.read(4 * magic[3])
            if len(sizes) < 4 * magic[3]:
                raise _damaged(path, "truncated inside its header")
            dims = struct.unpack(f">{magic[3]}I", sizes)
            need = math.prod(dims)
            if need > MAX_IDX_BYTES:
                raise _damaged(path, f"its header promises {need} data bytes {dims}, more than any MNIST "
                                     f"file")
            raw = bytearray(f.read(need))  # writable, so the tensor made from it may be written
            extra = len(f.read(1))
    except (OSError, EOFError, zlib.error) as e:  # gzip signals truncation with EOFError
        raise _damaged(path, e) from None
    if len(raw) != need or extra:
        raise _damaged(path, f"its header promises {need} data bytes {dims}, it holds "
                             f"{len(raw)}{' or more' if extra else ''}")
    return np.frombuffer(raw, np.uint8).reshape(dims)


def read_idx_folder(folder: Path) -> Arrays | None:
    """The four MNIST-layout files in ``folder`` (each raw or ``.gz``); None when the folder holds none."""
    found = {stem: _idx_path(folder, stem) for pair in IDX_FILES.values() for stem in pair}
    if not any(found.values()):
        return None
    missing = [s for s, p in found.items() if p is None]
    if missing:
        raise DataError(f"{folder} holds part of an MNIST-format dataset but not {', '.join(missing)}; "
                        f"{_REDOWNLOAD}")
    out = []
    for images, labels in IDX_FILES.values():
        x, y = read_idx(found[images]), read_idx(found[labels])
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise _damaged(found[images], f"{x.shape} images do not match {y.shape} labels in "
                                          f"{found[labels].name}")
        out += [x[:, None], y.astype(np.int64)]
    return tuple(out)


# -- CIFAR: python pickles --------------------------------------------------------------------------------
class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a CIFAR pickle: numpy's pickles only pass it to ``_reconstruct``;
    called directly it could allocate an array of any size, so calling it is refused."""

    def __init__(self, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray called directly, which no numpy pickle does")


def _reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct`` as its pickles call it: an empty base array whose contents the pickle's own
    bytes then fill (so the size is bounded by the file); any other shape, or an object dtype, is refused."""
    if subtype is not _NdarrayMarker or tuple(shape) != (0,) or np.dtype(dtype).hasobject:
        raise pickle.UnpicklingError(f"unexpected array reconstruction ({shape}, {dtype})")
    core = getattr(np, "_core", None) or np.core  # numpy 2 moved it; pickles name either module
    return core.multiarray._reconstruct(np.ndarray, shape, dtype)


_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"),
                  ("_codecs", "encode")}  # how Python 3 writes bytes at protocol 2 (a re-saved batch)


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals a CIFAR batch names: builtin containers, numbers and strings need none."""

    def __init__(self, f, path: Path):
        super().__init__(f, encoding="latin1")  # the published files were written by Python 2
        self.path = path

    def find_class(self, module, name):
        if (module, name) not in _CIFAR_GLOBALS:
            raise DataError(f"{self.path} names {module}.{name}, which no CIFAR file holds: refused unread, "
                            f"as a pickle can run code; fix: use the files of the official download")
        if name == "_reconstruct":
            return _reconstruct
        if module == "_codecs":
            import codecs
            return codecs.encode
        return _NdarrayMarker if name == "ndarray" else np.dtype


def read_cifar_pickle(path: Path) -> dict:
    """One CIFAR pickle (a dict of lists, strings and one uint8 array) through the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as e:  # a damaged pickle fails in many ways: EOFError, UnpicklingError, ValueError...
        raise _damaged(path, f"{type(e).__name__}: {e}") from None
    if not isinstance(d, dict):
        raise _damaged(path, f"holds a {type(d).__name__}, not the dict of a CIFAR batch")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar_split(folder: Path, files: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in files:
        path = folder / name
        d = read_cifar_pickle(path)
        x, y = d.get("data"), d.get(label_key)
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 \
                or y is None or len(y) != len(x):
            raise _damaged(path, f"expected uint8 'data' of shape (N, 3072) and N '{label_key}'")
        xs.append(x.reshape(-1, 3, 32, 32))  # rows hold the red, green, blue planes in turn: already CHW
        ys.append(np.asarray(y, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def read_cifar_folder(folder: Path, dataset: str) -> Arrays | None:
    """torchvision's ``cifar-10-batches-py`` / ``cifar-100-python`` folder; None when it does not exist."""
    _, train, test, meta, label_key, names_key = CIFAR[dataset]
    if not folder.is_dir():
        return None
    missing = [n for n in [*train, *test, meta] if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)} of {dataset}; {_REDOWNLOAD}")
    names = read_cifar_pickle(folder / meta).get(names_key)
    if not isinstance(names, list):
        raise _damaged(folder / meta, f"no '{names_key}' list of class names")
    xtr, ytr = _cifar_split(folder, train, label_key)
    xte, yte = _cifar_split(folder, test, label_key)
    bad = [int(v) for v in np.unique(np.concatenate([ytr, yte])) if not 0 <= v < len(names)]
    if bad:
        raise _damaged(folder, f"labels {bad[:5]} outside the {len(names)} classes its meta file names")
    return xtr, ytr, xte, yte


# -- SVHN: MATLAB files -----------------------------------------------------------------------------------
def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's cropped-digit file: X (32, 32, 3, N) uint8 and y (N, 1) with 10 standing for the digit 0."""
    from scipy.io import loadmat
    try:
        m = loadmat(path)
    except Exception as e:  # scipy reports damaged files as ValueError, MatReadError, TypeError, OSError...
        raise _damaged(path, f"{type(e).__name__}: {e}") from None
    x, y = m.get("X"), m.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[2] != 3 or y.size != x.shape[3]:
        raise _damaged(path, "expected X of shape (32, 32, 3, N) and N labels y")
    y = y.reshape(-1).astype(np.int64)
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise _damaged(path, f"labels must be 1..10 (10 for the digit 0), found {y.min()}..{y.max()}")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8), y % 10


def read_svhn_folder(folder: Path) -> Arrays | None:
    paths = [folder / f for f in SVHN_FILES]
    if not any(p.is_file() for p in paths):
        return None
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)} of SVHN; {_REDOWNLOAD}")
    return (*read_svhn_mat(paths[0]), *read_svhn_mat(paths[1]))


def _plain(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def read_dataset(dataset: str, root: Path) -> Arrays | None:
    """``dataset`` (a torchvision class name) from ``root`` as torchvision lays it out, or from the folder
    holding the files themselves; None when ``root`` holds no copy, DataError when its copy is damaged."""
    if dataset in CIFAR:
        sub = CIFAR[dataset][0]
        return read_cifar_folder(root if root.name == sub else root / sub, dataset)
    if dataset == "SVHN":
        return read_svhn_folder(root)
    folders = [root / dataset / "raw"]  # torchvision's layout
    if _plain(root.name) == _plain(dataset):  # a folder of the files named after the dataset (Debian's
        folders.append(root)                  # fashion-mnist): MNIST's files are never read as Fashion's
    for folder in folders:
        arrays = read_idx_folder(folder)
        if arrays is not None:
            return arrays
    return None
