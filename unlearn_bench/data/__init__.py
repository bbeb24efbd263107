"""Data: datasets as tensors (``sources``), your own files (``files``; their checks on raw arrays: ``raw``),
the published on-disk formats (``formats``), device batches (``batches``), forget/retain splits
(``splits``), checks (``check``). The dataset classes are importable from here: ``conf/data/*.yaml``
names them as ``unlearn_bench.data.X``."""

from unlearn_bench.data.files import ArrayFile, ImageFolder
from unlearn_bench.data.sources import Digits, ImageData, TorchvisionImages

__all__ = ["ArrayFile", "Digits", "ImageData", "ImageFolder", "TorchvisionImages"]
