"""Checkpoint cache keyed by a hash of the configuration that produced the weights.

Layout: ``<root>/<kind>/<key>.pt`` (a plain state dict) and ``<key>.json`` (the spec, the file's sha256
and training facts) written last, so a half-written entry is never complete. A file lock makes parallel
workers that need the same entry wait for the one that trains it. Entries load with
``torch.load(weights_only=True)``; one whose stored hash does not match is retrained, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock
from torch import nn

from unlearn_bench.errors import CacheError, one_line

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # bump when training code changes what a spec produces


def spec_key(spec: dict) -> str:
    blob = json.dumps({"v": CACHE_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), lambda p: p.write_text(text))


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
                     train: Callable[[nn.Module], dict]) -> tuple[nn.Module, dict, bool]:
        """Load the entry for ``spec`` or build and train it (under a lock). Returns (model, meta, hit)."""
        key = spec_key(spec)
        pt, meta_path = self.paths(kind, key)
        pt.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(pt.with_suffix(".lock"))):
            model = build()
            meta = self._load(kind, key, model)
            if meta is not None:
                return model, meta, True
            model = build()  # a failed load may have copied some tensors: train from a fresh initialisation
            # one line per training, so a log shows which worker trained an entry and which waited
            log.info("cache %s/%s: training (pid %d)", kind, key, os.getpid())
            t0 = time.perf_counter()
            facts = train(model)
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            atomic_write_bytes(pt, lambda p: torch.save(state, p))
            meta = {"kind": kind, "key": key, "spec": spec, "sha256": file_sha256(pt),
                    "train_s": time.perf_counter() - t0, "trained_by_pid": os.getpid(), **facts}
            atomic_write_text(meta_path, json.dumps(meta, indent=1, default=str))
            return model, meta, False
