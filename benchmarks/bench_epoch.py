"""One training epoch three ways, on the same synthetic tensors, timed side by side:

- harness: ``unlearn_bench.train.loop.fit`` over ``TensorBatches`` (device-resident uint8, batched
  augmentation; bf16 autocast + channels_last on CUDA, fp32 on CPU), as the pipeline runs it;
- plain: a hand-written PyTorch loop over the same batches with the same optimizer and precision;
- typical: uint8 arrays -> PIL -> torchvision transforms -> DataLoader workers -> plain loop (fp32).

Prints harness/plain (the Lightning overhead) and typical/harness (the speed-up of the design).
CPU: a stated subset of each epoch, smaller ResNet batches; CUDA: full epochs at the recipe's batch size.
Each variant trains as many epochs as the pipeline trains in one ``fit`` where an epoch is only a few
steps (the digits MLP: its recipe's 20 epochs of 11 steps), so ``fit``'s fixed start-up cost is counted as
often as a real run pays it; times are reported per epoch.
"""

from __future__ import annotations

import contextlib
from functools import partial

import common
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from unlearn_bench.data.batches import Normalizer, TensorBatches
from unlearn_bench.models import cnn_paper, mlp, resnet18
from unlearn_bench.train.loop import cosine_schedule, cross_entropy, fit

MEAN = {1: (0.2860,), 3: (0.4914, 0.4822, 0.4465)}
STD = {1: (0.3530,), 3: (0.2470, 0.2435, 0.2616)}


def cases(cuda: bool, quick: bool) -> list[dict]:
    """(model, shape, batch size, images per timed epoch, epochs per fit, optimizer, schedule,
    augmentation)."""
    adam = partial(torch.optim.Adam, lr=1e-3)
    sgd = partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    if quick:
        sizes = {"mlp": (128, 4 * 128, 2), "cnn_paper": (32, 32, 1), "resnet18": (8, 8, 1)}
    elif cuda:  # full epochs of the real datasets' sizes, the recipes' batch sizes
        sizes = {"mlp": (128, 1347, 20), "cnn_paper": (128, 60000, 1), "resnet18": (512, 50000, 1)}
    else:  # CPU: a subset of batches per epoch; ResNet-18 batches of 64 instead of 512
        sizes = {"mlp": (128, 1347, 20), "cnn_paper": (128, 10 * 128, 1), "resnet18": (64, 3 * 64, 1)}
    models = [
        {"name": "mlp", "factory": mlp, "shape": (1, 8, 8), "opt": adam, "schedule": "none",
         "augment": "none"},
        {"name": "cnn_paper", "factory": cnn_paper, "shape": (1, 28, 28), "opt": adam, "schedule": "none",
         "augment": "none"},
        {"name": "resnet18", "factory": resnet18, "shape": (3, 32, 32), "opt": sgd, "schedule": "cosine",
         "augment": "crop_flip"},
    ]
    return [dict(c, batch=sizes[c["name"]][0], n=sizes[c["name"]][1], epochs=sizes[c["name"]][2])
            for c in models]


class PILImages(Dataset):
    """What torchvision's CIFAR10/FashionMNIST do per item: array -> PIL image -> transforms."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        arr = x.permute(0, 2, 3, 1).numpy()
        self.x = arr[..., 0] if arr.shape[-1] == 1 else arr
        self.y, self.transform = y.numpy(), transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(np.ascontiguousarray(self.x[i]))), int(self.y[i])


def typical_loader(c: dict, x, y, cuda: bool) -> DataLoader:
    ch, h = c["shape"][0], c["shape"][1]
    aug = ([transforms.RandomCrop(h, padding=4), transforms.RandomHorizontalFlip()]
           if c["augment"] != "none" else [])
    tf = transforms.Compose([*aug, transforms.ToTensor(), transforms.Normalize(MEAN[ch], STD[ch])])
    workers = 8 if cuda else 2
    # persistent workers: over several epochs per fit, re-spawning them every epoch would charge the typical
    # pipeline a start-up cost that careful users avoid
    return DataLoader(PILImages(x, y, tf), batch_size=c["batch"], shuffle=True, num_workers=workers,
                      pin_memory=cuda, drop_last=False, persistent_workers=c["epochs"] > 1)


def run_case(c: dict, device: str, repeats: int, warmup: bool) -> dict[str, list[float]]:
    cuda = device.startswith("cuda")
    cl = cuda and c["shape"][-1] > 1
    x, y = common.synthetic(c["n"], c["shape"], 10, seed=0)
    xd, yd = x.to(device), y.to(device)
    norm = Normalizer(MEAN[c["shape"][0]], STD[c["shape"][0]], device)
    steps, epochs = -(-c["n"] // c["batch"]), c["epochs"]

    def fresh_model():
        torch.manual_seed(0)
        m = c["factory"](c["shape"], 10).to(device)
        return m.to(memory_format=torch.channels_last) if cl else m

    def batches():
        return TensorBatches(xd, yd, norm, c["batch"], seed=0, augment=c["augment"], channels_last=cl)

    def harness(model, progress=False):
        fit(model, batches(), cross_entropy(), c["opt"], device, epochs=epochs, schedule=c["schedule"],
            progress=progress)

    def plain_loop(model, data, to_device=False, amp=cuda):
        opt = c["opt"](model.parameters())
        sched = (torch.optim.lr_scheduler.LambdaLR(opt, cosine_schedule(steps * epochs))
                 if c["schedule"] == "cosine" else None)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        model.train()
        # the CUDA check torch.optim makes per step is settled for the process when the loop is imported
        # (unlearn_bench.train.loop._settle_cuda_check): this loop pays what the harness pays
        for xb, yb in (b for _ in range(epochs) for b in data):  # each pass reshuffles
            if to_device:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()

    def typical_model():
        torch.manual_seed(0)
        return c["factory"](c["shape"], 10).to(device)

    variants = {
        "harness": (fresh_model, harness),
        "harness_bar": (fresh_model, partial(harness, progress=True)),
        "plain": (fresh_model, lambda m: plain_loop(m, batches())),
        "typical": (typical_model, lambda m: plain_loop(m, typical_loader(c, x, y, cuda), True, amp=False)),
    }
    cpu: dict = {}
    wall = common.alternate(variants, device, repeats, warmup, cpu=cpu)

    def per_epoch(d):
        return {k: [t / epochs for t in v] for k, v in d.items()}
    return per_epoch(wall), per_epoch(cpu)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,cnn_paper,resnet18", help="comma-separated subset")
    args = p.parse_args()
    device = common.pick_device(args.device)
    cuda = device.startswith("cuda")
    chosen = [c for c in cases(cuda, args.quick) if c["name"] in args.models.split(",")]
    repeats = args.repeats or (1 if args.quick else 3)
    figures: dict = {}
    for c in chosen:
        fast = c["name"] == "mlp" and not args.quick  # milliseconds per epoch: more repeats against noise
        t, cpu = run_case(c, device, repeats * (3 if fast else 1), warmup=cuda or fast)
        steps = -(-c["n"] // c["batch"])
        print(f"== {c['name']} {c['shape']} batch {c['batch']}, {c['n']} images ({steps} steps) per epoch, "
              f"{c['epochs']} epoch(s) per fit; seconds per epoch")
        for k, v in t.items():
            print(f"  {k:12s} {common.spread(v)}  {steps / common.med(v):.1f} steps/s")
        h, p, ty = (common.med(t[k]) for k in ("harness", "plain", "typical"))
        best = min(t["harness"]) / min(t["plain"])
        print(f"  harness/plain {h / p:.2f}x (best of n: {best:.2f}x)   "
              f"harness_bar/plain {common.med(t['harness_bar']) / p:.2f}x   typical/harness {ty / h:.2f}x")
        figures[f"{c['name']} harness/plain"] = h / p
        # best-of-n as well: on a shared machine the fastest repeat is the one least disturbed by others
        figures[f"{c['name']} harness/plain best"] = best
        if not cuda:  # both run in this process: CPU seconds compare them without the neighbours' noise
            figures[f"{c['name']} harness/plain cpu"] = common.med(cpu["harness"]) / common.med(cpu["plain"])
            print(f"  harness/plain in CPU time {figures[c['name'] + ' harness/plain cpu']:.2f}x")
        figures[f"{c['name']} bar/plain"] = common.med(t["harness_bar"]) / p
        figures[f"{c['name']} typical/harness"] = ty / h
        figures[f"{c['name']} harness steps/s"] = steps / h
    subset = "; ".join(f"{c['name']} bs{c['batch']} x {c['n']} imgs x {c['epochs']} ep" for c in chosen)
    prec = "bf16 autocast + channels_last" if cuda else "fp32"
    common.record(args, "bench_epoch", device, figures,
                  f"median of {repeats} (mlp: {3 * repeats}); {subset}; "
                  f"harness and plain in {prec}, typical = PIL/DataLoader loop in fp32 (as peers' code)")


if __name__ == "__main__":
    main()
