"""Device-resident batching: index uint8 tensors that already live on the device, convert and
augment whole batches with tensor ops. This replaces a CPU DataLoader for datasets that fit in memory."""

from __future__ import annotations

import torch


class Normalizer:
    """uint8 images -> float, scaled to [0, 1] then standardised per channel."""

    def __init__(self, mean, std, device):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float().div_(255.0) - self.mean) / self.std


def crop_flip_draws(n: int, pad: int, generator: torch.Generator, device) -> tuple[torch.Tensor, ...]:
    """Per-sample (row offset, column offset, mirror) for ``random_crop_flip``, drawn on the CPU generator
    (the same numbers on every device) and copied to ``device`` in one go."""
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    mirror = torch.rand(n, generator=generator) < 0.5
    return tuple(t.to(device, non_blocking=True) for t in (dy, dx, mirror))


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None,
                     draws: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (zero padding) and optional horizontal flip, per sample,
    in one gather: the standard CIFAR augmentation (He et al. 2016) as a batched tensor op. ``draws``
    (from ``crop_flip_draws``) supplies the random numbers already on the device; else they come from
    ``generator``."""
    n, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy, dx, mirror = draws if draws is not None else crop_flip_draws(n, pad, generator, dev)
    rows = dy[:, None] + torch.arange(h, device=dev)[None]
    cols = dx[:, None] + torch.arange(w, device=dev)[None]
    if flip:
        cols = torch.where(mirror[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n, device=dev)[:, None, None, None]
    idx_c = torch.arange(c, device=dev)[None, :, None, None]
    return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]


class TensorBatches:
    """An iterable of (x, y) batches over device tensors; reshuffled (seeded) on every pass.

    Lightning accepts any iterable with ``__len__`` as a dataloader, so this is what ``Trainer.fit`` gets.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, normalize: Normalizer, batch_size: int,
                 shuffle: bool = True, seed: int = 0, augment: str = "none", drop_last: bool = False,
                 channels_last: bool = False):
        if len(x) != len(y):
            raise ValueError("x and y differ in length")
        self.x, self.y, self.normalize = x, y, normalize
        self.batch_size, self.shuffle, self.augment = int(batch_size), shuffle, augment
        self.drop_last, self.channels_last = drop_last, channels_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.x.device)
        # one host-to-device copy of the epoch's augmentation draws: a per-batch copy from pageable memory
        # would make the host wait for the GPU at every step
        draws = crop_flip_draws(n, 4, self.generator, self.x.device) if self.augment != "none" else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order[sl]
            xb = self.x[idx]
            if draws is not None:
                xb = random_crop_flip(xb, 4, self.augment == "crop_flip", None, tuple(d[sl] for d in draws))
            xb = self.normalize(xb)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]


class Subset:
    """A labelled set of images held as device tensors (uint8 images + int64 labels)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, normalize: Normalizer, augment: str = "none",
                 channels_last: bool = False):
        self.x, self.y, self.normalize = x, y, normalize
        self.augment, self.channels_last = augment, channels_last

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, augment: bool = False,
                drop_last: bool = False) -> TensorBatches:
        return TensorBatches(self.x, self.y, self.normalize, batch_size, shuffle, seed,
                             self.augment if augment else "none", drop_last, self.channels_last)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images normalised at once (for small sets such as the unseen pool)."""
        return self.normalize(self.x), self.y

    def sample(self, n: int, seed: int) -> Subset:
        """A seeded random subset of ``n`` items (all of them if ``n >= len``)."""
        if n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].to(self.x.device)
        return Subset(self.x[idx], self.y[idx], self.normalize, self.augment, self.channels_last)
