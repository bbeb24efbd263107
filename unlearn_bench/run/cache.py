"""Checkpoint cache keyed by a hash of the configuration that produced the weights.

Layout: ``<root>/<kind>/<key>.pt`` (a plain state dict) and ``<key>.json`` (the spec, the file's sha256
and training facts) written last, so a half-written entry is never complete. A file lock makes parallel
workers that need the same entry wait for the one that trains it (``locks.OwnedLock``: the wait is logged
with its holder, and a lock left by a holder that is gone is recognised as stale). Entries load with
``torch.load(weights_only=True)``; one whose stored hash does not match is retrained, never used.
Outputs derived from a cached model (logits, attack results) are stored with a hash of their content
(``write_verified_npz`` / ``write_verified_json``) and recomputed when it no longer matches.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import pickle
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unlearn_bench.errors import CacheError, DiskFull, one_line
from unlearn_bench.run.identity import spec_key
from unlearn_bench.run.locks import OwnedLock

log = logging.getLogger(__name__)
HASH_KEY = "__sha256__"  # the content hash inside a cached .npz



def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e``, or an exception it was raised from, is a file system out of space (or quota)."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__
    return False


def atomic_write_bytes(path: Path, write: Callable[[Path], None], what: str | None = None) -> None:
    """``write`` a temporary file beside ``path``, then rename it over ``path``: a reader sees the old file or
    the whole new one. On any failure (a full disk, a signal) the temporary file is removed; a full disk
    becomes ``DiskFull`` naming ``what`` was being written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise DiskFull(path.parent, what or path.name) from e
        raise


def atomic_write_text(path: Path, text: str, what: str | None = None) -> None:
    atomic_write_bytes(Path(path), lambda p: p.write_text(text), what)


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes: the identity of cached outputs, not of their file."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_verified_npz(path: Path, arrays: dict[str, np.ndarray], what: str) -> None:
    """Cached arrays with the hash of their content stored inside (``HASH_KEY``), atomically."""
    def save(p):
        with open(p, "wb") as f:
            np.savez(f, **arrays, **{HASH_KEY: np.array(content_hash(arrays))})
    atomic_write_bytes(Path(path), save, what)


def read_verified_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``write_verified_npz``, or None (with a warning) when the file is unreadable, has no
    recorded hash (written before hashes were) or its content no longer matches it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        log.warning("cached outputs %s unreadable (%s); recomputing", path, one_line(e, 120))
        return None
    return _verified(path, out.pop(HASH_KEY, None), out, content_hash)


def write_verified_json(path: Path, obj, what: str) -> None:
    atomic_write_text(Path(path), json.dumps({"sha256": _json_hash(obj), "value": obj}, sort_keys=True), what)


def read_verified_json(path: Path):
    """The object of ``write_verified_json``, or None (with a warning) as ``read_verified_npz``."""
    try:
        stored = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        log.warning("cached result %s unreadable (%s); recomputing", path, one_line(e, 120))
        return None
    if not (isinstance(stored, dict) and set(stored) == {"sha256", "value"}):
        stored = {"sha256": None, "value": stored}
    return _verified(path, stored["sha256"], stored["value"], _json_hash)


def _json_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _verified(path: Path, recorded, value, digest):
    if recorded is None:
        log.warning("cached result %s has no recorded hash (written by an older version); recomputing once",
                    path)
        return None
    if str(recorded) != digest(value):
        log.warning("cached result %s does not match the hash recorded when it was written (changed or "
                    "damaged since); recomputing", path)
        return None
    return value


CHECKPOINT_EVERY_ENV = "UNLEARN_BENCH_CHECKPOINT_EVERY_S"


def checkpoint_interval() -> float:
    """Seconds between two saves of a resumable training (``UNLEARN_BENCH_CHECKPOINT_EVERY_S``, default 60;
    0 saves every epoch)."""
    raw = os.environ.get(CHECKPOINT_EVERY_ENV, "60")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{CHECKPOINT_EVERY_ENV}={raw!r} is not a number of seconds; fix: set it to e.g. 60 "
                         f"(0 saves every epoch)") from None
    return max(0.0, value)


@dataclass
class Resume:
    """Where one training keeps its last finished epoch (``path``, e.g.
    ``<cache>/original/<key>.partial.pt``) and the name its log lines use. Only the training that owns the
    path (under the cache's lock) may use it."""

    path: Path
    label: str
    every_s: float = field(default_factory=checkpoint_interval)
    prior_s: float = 0.0  # training seconds spent before the saved epoch (by stopped processes)
    resumed_from: int = 0  # epochs done when this training resumed

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # a damaged file costs the epochs it held, never the run
            log.warning("%s: saved epoch unreadable (%s); training from the first epoch", self.label,
                        one_line(e, 120))
            return None

    def save(self, state: dict) -> None:
        """Keep ``state``; a failure to (a full disk) costs the ability to resume, never the training."""
        def write(p):
            with open(p, "wb") as f:
                torch.save(state, f)
        try:
            atomic_write_bytes(self.path, write, f"the last epoch of {self.label}")
        except OSError as e:  # DiskFull is an OSError too
            log.warning("%s: could not save the last epoch (%s); this training will not be resumable",
                        self.label, one_line(e, 160))
            self.every_s = math.inf

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class ModelCache:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def paths(self, kind: str, key: str) -> tuple[Path, Path]:
        d = self.root / kind
        return d / f"{key}.pt", d / f"{key}.json"

    def _load(self, kind: str, key: str, model: nn.Module) -> dict | None:
        pt, meta_path = self.paths(kind, key)
        if not (pt.exists() and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, OSError):
            log.warning("cache %s/%s: unreadable metadata; rebuilding", kind, key)
            return None
        if file_sha256(pt) != meta.get("sha256"):
            log.warning("cache %s/%s: checkpoint hash mismatch (corrupt or truncated); rebuilding", kind, key)
            return None
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:  # weights_only refuses anything but tensors and plain containers
            raise CacheError(f"cache entry {pt} holds pickled objects and was refused ({one_line(e, 160)}); "
                             f"fix: delete it") from e
        except (RuntimeError, EOFError, OSError) as e:  # an unreadable archive whose meta was rewritten
            log.warning("cache %s/%s: unreadable checkpoint (%s); rebuilding", kind, key, e)
            return None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:  # the architecture changed under the same spec
            log.warning("cache %s/%s: weights do not fit the model (%s); rebuilding", kind, key,
                        str(e).splitlines()[0])
            return None
        return meta

    def get_or_train(self, kind: str, spec: dict, build: Callable[[], nn.Module],
                     train: Callable[..., dict], resumable: bool = False) -> tuple[nn.Module, dict, bool]:
        """Load the entry for ``spec`` or build and train it (under a lock). Returns (model, meta, hit).
        ``resumable``: ``train(model, resume)`` gets a ``training.Resume`` at ``<key>.partial.pt`` where it
        keeps its last finished epoch, so a training stopped part-way (a time limit, a signal) continues
        from there when the entry is asked for again; the file goes once the entry is complete."""
        key = spec_key(spec)
        pt, meta_path = self.paths(kind, key)
        pt.parent.mkdir(parents=True, exist_ok=True)
        with OwnedLock(pt.with_suffix(".lock"), f"cache {kind}/{key}"):
            model = build()
            meta = self._load(kind, key, model)
            if meta is not None:
                return model, meta, True
            model = build()  # a failed load may have copied some tensors: train from a fresh initialisation
            # one line per training, so a log shows which worker trained an entry and which waited
            log.info("cache %s/%s: training (pid %d)", kind, key, os.getpid())
            t0 = time.perf_counter()
            resume = None
            if resumable:
                resume = Resume(pt.with_suffix(".partial.pt"), f"cache {kind}/{key}")
            facts = train(model, resume) if resumable else train(model)
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            atomic_write_bytes(pt, lambda p: _save(state, p), f"the cached {kind} model")
            # a resumed training counts the seconds its stopped predecessors spent too
            meta = {"kind": kind, "key": key, "spec": spec, "sha256": file_sha256(pt),
                    "train_s": time.perf_counter() - t0 + (resume.prior_s if resume else 0.0),
                    "trained_by_pid": os.getpid(), **facts}
            if resume is not None and resume.resumed_from:
                meta["resumed_from_epoch"] = resume.resumed_from
            atomic_write_text(meta_path, json.dumps(meta, indent=1, default=str), f"the cached {kind} model")
            if resume is not None:
                resume.discard()
            return model, meta, False


def _save(state: dict, path: Path) -> None:
    # through a Python file: a full disk is then OSError(ENOSPC), where torch's own writer on a path raises
    # "RuntimeError: [enforce fail at inline_container.cc] unexpected pos"
    with open(path, "wb") as f:
        torch.save(state, f)
