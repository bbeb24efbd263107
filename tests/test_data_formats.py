"""MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100 and SVHN load from files written here in their published formats
(IDX gz under torchvision's ``MNIST/raw``, CIFAR python pickle batches with their meta file, SVHN ``.mat``),
through the configs a user runs, without network; the arrays match what was written and what torchvision's
own readers make of the same files; a pickle naming a foreign global and damaged files are one-line errors."""

import gzip
import os
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hydra.utils import instantiate
from scipy.io import savemat

from unlearn_bench.config import compose
from unlearn_bench.data import TorchvisionImages
from unlearn_bench.errors import DataError

SIZES = {"MNIST": (1, 28), "FashionMNIST": (1, 28), "CIFAR10": (3, 32), "CIFAR100": (3, 32), "SVHN": (3, 32)}
CLASSES = {"CIFAR100": 100}
CONF = {"MNIST": "mnist", "FashionMNIST": "fashion_mnist", "CIFAR10": "cifar10", "CIFAR100": "cifar100",
        "SVHN": "svhn"}


def images(dataset: str, per_class: int, seed: int, classes: int | None = None):
    """Labels cycling through the classes, and images whose brightness follows the label (learnable)."""
    k = classes or CLASSES.get(dataset, 10)
    c, s = SIZES[dataset]
    y = np.tile(np.arange(k), per_class)
    rng = np.random.default_rng(seed)
    mean = (40 + 180 * y / max(k - 1, 1))[:, None, None, None]
    x = rng.normal(mean, 25, size=(len(y), c, s, s)).clip(0, 255).astype(np.uint8)
    return x, y


def _idx(path: Path, a: np.ndarray) -> None:
    head = bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(head + a.astype(np.uint8).tobytes())


def write_idx(folder: Path, train, test, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, (x, y) in (("train", train), ("t10k", test)):
        _idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x[:, 0])
        _idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)


def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the published batches are protocol-2 pickles


def write_cifar(root: Path, dataset: str, train, test) -> Path:
    """torchvision's CIFAR folder: CIFAR-10 in five training batches + test_batch + batches.meta,
    CIFAR-100 as train + test + meta with fine and coarse labels."""
    def batch(x, y, label):
        d = {"batch_label": label, "data": x.reshape(len(x), -1),
             "filenames": [f"img_{i}.png" for i in range(len(x))]}
        if dataset == "CIFAR10":
            return {**d, "labels": y.tolist()}
        return {**d, "fine_labels": y.tolist(), "coarse_labels": (y // 5).tolist()}

    k = CLASSES.get(dataset, 10)
    if dataset == "CIFAR10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for i, part in enumerate(np.array_split(np.arange(len(train[1])), 5), 1):
            _pickle(folder / f"data_batch_{i}",
                    batch(train[0][part], train[1][part], f"training batch {i} of 5"))
        _pickle(folder / "test_batch", batch(*test, "testing batch 1 of 1"))
        _pickle(folder / "batches.meta", {"num_cases_per_batch": 10000, "num_vis": 3072,
                                          "label_names": [f"class{i}" for i in range(k)]})
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        _pickle(folder / "train", batch(*train, "training batch 1 of 1"))
        _pickle(folder / "test", batch(*test, "testing batch 1 of 1"))
        _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(k)],
                                  "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return folder


def write_svhn(root: Path, train, test) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in (("train_32x32.mat", train), ("test_32x32.mat", test)):
        label = np.where(y == 0, 10, y).astype(np.uint8)[:, None]  # SVHN writes the digit 0 as label 10
        savemat(root / name, {"X": x.transpose(2, 3, 1, 0), "y": label})


def write_dataset(root: Path, dataset: str, train_per_class: int = 3, test_per_class: int = 2):
    """``dataset`` under ``root`` as torchvision lays out its download; returns the arrays written."""
    train, test = images(dataset, train_per_class, 0), images(dataset, test_per_class, 1)
    if dataset in ("MNIST", "FashionMNIST"):
        write_idx(root / dataset / "raw", train, test)
    elif dataset == "SVHN":
        write_svhn(root, train, test)
    else:
        write_cifar(root, dataset, train, test)
    return train, test


def _load(dataset: str, root: Path, cache: Path, *extra):
    cfg = compose([f"data={CONF[dataset]}", f"data.root={root}", *extra])
    return instantiate(cfg.data).load(cache)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to download or open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(TorchvisionImages, "_download", refuse, raising=False)


@pytest.mark.parametrize("dataset", ["MNIST", "CIFAR10", "CIFAR100", "SVHN"])
def test_each_format_loads_from_a_download_under_data_root(dataset, tmp_path, offline):
    (xtr, ytr), (xte, yte) = write_dataset(tmp_path / "data", dataset)
    d = _load(dataset, tmp_path / "data", tmp_path / "cache")  # download stays true: the local copy wins
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape == xtr.shape
    assert d.num_classes == CLASSES.get(dataset, 10)
    assert np.array_equal(d.train_x.numpy(), xtr) and np.array_equal(d.train_y.numpy(), ytr)
    assert np.array_equal(d.test_x.numpy(), xte) and np.array_equal(d.test_y.numpy(), yte)


def _torchvision_reading(dataset: str, root: Path, monkeypatch):
    """torchvision's own parser of the same files, its md5 check switched off (it knows only the published
    files): an independent reading of each format's layout."""
    cls = getattr(torchvision.datasets, dataset)
    if hasattr(cls, "_check_integrity"):
        monkeypatch.setattr(cls, "_check_integrity", lambda self: True)
        module = __import__(cls.__module__, fromlist=["_"])
        monkeypatch.setattr(module, "check_integrity", lambda *a, **k: True)
    out = []
    svhn = dataset == "SVHN"
    for kw in ([{"split": "train"}, {"split": "test"}] if svhn else [{"train": True}, {"train": False}]):
        ds = cls(str(root), download=False, **kw)
        x = torch.as_tensor(np.asarray(ds.data))
        x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2) if x.shape[-1] == 3 else x
        out += [x, torch.as_tensor(np.asarray(ds.labels if dataset == "SVHN" else ds.targets))]
    return out


@pytest.mark.parametrize("dataset", ["MNIST", "CIFAR10", "CIFAR100", "SVHN"])
def test_arrays_match_torchvisions_reading_of_the_same_files(dataset, tmp_path, monkeypatch, offline):
    root = tmp_path / "data"
    train, test = write_dataset(root, dataset)
    if dataset == "MNIST":  # torchvision reads MNIST's files decompressed, as its download leaves them
        write_idx(root / "MNIST" / "raw", train, test, gz=False)
    ours = _load(dataset, root, tmp_path / "cache")
    xtr, ytr, xte, yte = _torchvision_reading(dataset, root, monkeypatch)
    assert torch.equal(ours.train_x, xtr.contiguous()) and torch.equal(ours.train_y, ytr.long())
    assert torch.equal(ours.test_x, xte.contiguous()) and torch.equal(ours.test_y, yte.long())


def test_fashion_mnist_from_a_debian_style_folder_of_gz_files(tmp_path, offline):
    train, test = images("FashionMNIST", 3, 0), images("FashionMNIST", 2, 1)
    write_idx(tmp_path / "usr-share" / "fashion-mnist", train, test)  # flat, gzipped: dataset-fashion-mnist
    system = tmp_path / "usr-share" / "fashion-mnist"
    d = _load("FashionMNIST", "null", tmp_path / "cache", f"data.system_dirs=[{system}]")
    assert np.array_equal(d.train_x.numpy(), train[0]) and np.array_equal(d.test_y.numpy(), test[1])


class _Payload:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_naming_another_global_is_refused_unread(tmp_path, offline):
    folder = write_cifar(tmp_path / "data", "CIFAR10", images("CIFAR10", 3, 0), images("CIFAR10", 2, 1))
    payload = _Payload()
    payload.marker = tmp_path / "ran"
    _pickle(folder / "data_batch_3", {"data": payload, "labels": []})
    with pytest.raises(DataError) as e:
        _load("CIFAR10", tmp_path / "data", tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg and "data_batch_3" in msg and "fix:" in msg
    assert "system" in msg and "refused" in msg
    assert not payload.marker.exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("dataset,file", [("MNIST", "MNIST/raw/train-images-idx3-ubyte.gz"),
                                          ("MNIST", "MNIST/raw/t10k-labels-idx1-ubyte.gz"),
                                          ("CIFAR10", "cifar-10-batches-py/data_batch_2"),
                                          ("CIFAR10", "cifar-10-batches-py/batches.meta"),
                                          ("CIFAR100", "cifar-100-python/test"),
                                          ("SVHN", "test_32x32.mat")])
def test_a_truncated_file_is_one_line_naming_it(dataset, file, tmp_path, offline):
    write_dataset(tmp_path / "data", dataset)
    _truncate(tmp_path / "data" / file)
    with pytest.raises(DataError) as e:
        _load(dataset, tmp_path / "data", tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg and file.split("/")[-1] in msg and "fix:" in msg


def test_an_idx_file_whose_header_disagrees_with_its_size_is_refused(tmp_path, offline):
    write_dataset(tmp_path / "data", "MNIST")
    raw = tmp_path / "data" / "MNIST" / "raw"
    x = images("MNIST", 3, 0)[0][:-1, 0]  # one image short of the 30 labels: both files intact on their own
    _idx(raw / "train-images-idx3-ubyte.gz", x)
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "rb") as f:
        body = f.read()
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(body + b"\x00")  # one stray byte past what the header promises
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz .*\(29, 28, 28\).*\(30,\)"):
        _load("MNIST", tmp_path / "data", tmp_path / "cache")
    _idx(raw / "train-images-idx3-ubyte.gz", images("MNIST", 3, 0)[0][:, 0])
    promised = r"t10k-images-idx3-ubyte\.gz .*promises 15680 data bytes .* holds 15680 or more"
    with pytest.raises(DataError, match=promised):
        _load("MNIST", tmp_path / "data", tmp_path / "cache")


class _HugeArray:
    """Pickles as a direct call of numpy.ndarray with a shape of the attacker's choosing."""

    def __reduce__(self):
        return np.ndarray, ((50_000_000,), np.dtype("O"))


@pytest.mark.parametrize("payload", [_HugeArray(), np.zeros(3, dtype=object)],
                         ids=["ndarray-call", "object-array"])
def test_a_pickle_cannot_make_the_reader_allocate_an_array_it_does_not_hold(payload, tmp_path, offline):
    folder = write_cifar(tmp_path / "data", "CIFAR10", images("CIFAR10", 3, 0), images("CIFAR10", 2, 1))
    _pickle(folder / "data_batch_2", {"data": payload, "labels": []})
    # an object array's contents come from the file itself (bounded by its size), and are then refused
    why = r"ndarray called directly" if isinstance(payload, _HugeArray) else r"expected uint8 'data'"
    with pytest.raises(DataError, match=rf"data_batch_2 .*{why}"):
        _load("CIFAR10", tmp_path / "data", tmp_path / "cache")


def test_an_idx_header_promising_more_than_any_mnist_file_is_refused_before_reading(tmp_path, offline):
    write_dataset(tmp_path / "data", "MNIST")
    path = tmp_path / "data" / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:  # 4 x 2^32 - 1 dims: the product overflows int64 in numpy
        f.write(b"\x00\x00\x08\x04" + struct.pack(">4I", *[2**32 - 1] * 4))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz .*more than any MNIST file"):
        _load("MNIST", tmp_path / "data", tmp_path / "cache")


def test_mnist_files_in_a_folder_are_not_read_as_fashion_mnist(tmp_path, offline):
    write_idx(tmp_path / "mnist", images("MNIST", 3, 0), images("MNIST", 2, 1))  # flat, named for MNIST
    assert TorchvisionImages  # the reader below is the one data=fashion_mnist uses
    from unlearn_bench.data.formats import read_dataset
    assert read_dataset("FashionMNIST", tmp_path / "mnist") is None
    assert read_dataset("MNIST", tmp_path / "mnist") is not None


def test_svhn_labels_outside_one_to_ten_are_refused(tmp_path, offline):
    write_dataset(tmp_path / "data", "SVHN")
    m = {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [13]], np.uint8)}
    savemat(tmp_path / "data" / "test_32x32.mat", m)
    with pytest.raises(DataError, match=r"test_32x32\.mat .*labels must be 1\.\.10.*13"):
        _load("SVHN", tmp_path / "data", tmp_path / "cache")


def test_a_partial_copy_names_the_missing_file(tmp_path, offline):
    write_dataset(tmp_path / "data", "CIFAR100")
    (tmp_path / "data" / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DataError, match=r"lacks meta of CIFAR100; fix:"):
        _load("CIFAR100", tmp_path / "data", tmp_path / "cache")


# A batch as Python 2's cPickle wrote the published files (protocol 2, byte strings, numpy.core's
# _reconstruct): a 2x3 uint8 'data' array and two labels, opcodes written out by hand.
PY2_BATCH = (b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03"
             b"K\x00\x85U\x01b\x87Rq\x04(K\x01K\x02K\x03\x86cnumpy\ndtype\nq\x05U\x02u1K\x00K\x01\x87Rq\x06"
             b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06\x01\x02\x03\xfe\xff\x00tb"
             b"U\x06labelsq\x07]q\x08(K\x01K\x02eu.")


def test_a_python2_batch_as_published_reads(tmp_path):
    from unlearn_bench.data.formats import read_cifar_pickle
    (tmp_path / "data_batch_1").write_bytes(PY2_BATCH)
    d = read_cifar_pickle(tmp_path / "data_batch_1")
    assert d["labels"] == [1, 2] and d["data"].dtype == np.uint8
    assert d["data"].tolist() == [[1, 2, 3], [254, 255, 0]]
