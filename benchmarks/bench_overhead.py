"""What the harness's loop costs over a plain PyTorch loop: ``unlearn_bench.train.loop.fit`` against a
hand-written loop with the same model, the same batches (``TensorBatches``, same seed and order), the same
optimizer and precision, timed interleaved in one process. Prints both in seconds side by side and their
ratio (wall and this process's CPU time; the CPU-time ratio is the steadier one on a shared machine).

Cases: the digits MLP as the pipeline trains it (1347 images of 8x8, 20 epochs of 11 steps per ``fit``, so
``fit``'s fixed start-up cost is paid as often as a real run pays it) and two small conv nets, LeNet-5 and
the paper's CNN, on Fashion-MNIST-shaped random uint8 images (28x28) for one epoch: all 60,000 on CUDA, a
stated subset on CPU (``--images``). Target: harness/plain <= 1.2.
"""

from __future__ import annotations

import contextlib
from functools import partial

import common
import torch
import torch.nn.functional as F

from unlearn_bench.data.batches import Normalizer, TensorBatches
from unlearn_bench.models import cnn_paper, lenet5, mlp
from unlearn_bench.train.loop import cross_entropy, fit

CASES = {  # factory, image shape, batch size, images per epoch (CUDA, CPU), epochs per fit
    "mlp": (mlp, (1, 8, 8), 128, (1347, 1347), 20),
    "lenet5": (lenet5, (1, 28, 28), 128, (60000, 2560), 1),
    "cnn_paper": (cnn_paper, (1, 28, 28), 128, (60000, 1280), 1),
}


def run_case(name: str, device: str, repeats: int, images: int | None, quick: bool):
    factory, shape, batch, sizes, epochs = CASES[name]
    cuda = device.startswith("cuda")
    n = images or (256 if quick else sizes[0 if cuda else 1])
    epochs = 2 if quick else epochs
    x, y = common.synthetic(n, shape, 10, seed=0)
    xd, yd = x.to(device), y.to(device)
    norm = Normalizer((0.286,), (0.353,), device)
    opt = partial(torch.optim.Adam, lr=1e-3)

    def fresh():
        torch.manual_seed(0)
        return factory(shape, 10).to(device)

    def batches():
        return TensorBatches(xd, yd, norm, batch, seed=0)

    def harness(model):
        fit(model, batches(), cross_entropy(), opt, device, epochs=epochs, progress=False)

    def plain(model):
        o = opt(model.parameters())
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
        model.train()
        for xb, yb in (b for _ in range(epochs) for b in batches()):
            with autocast:
                loss = F.cross_entropy(model(xb), yb)
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()
        model.eval()

    cpu: dict = {}
    wall = common.alternate({"harness": (fresh, harness), "plain": (fresh, plain)}, device, repeats,
                            warmup=True, cpu=cpu)
    return wall, cpu, n, epochs, -(-n // batch)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(CASES), help="comma-separated subset")
    p.add_argument("--images", type=int, default=None, help="images per epoch for the conv nets")
    args = p.parse_args()
    device = common.pick_device(args.device)
    repeats = args.repeats or (1 if args.quick else 5)
    figures: dict = {}
    sizes = []
    print(f"{'case':10s} {'harness s':>10s} {'plain s':>10s} {'ratio':>6s} {'cpu ratio':>9s}   (median of "
          f"{repeats}, per fit)")
    for name in args.models.split(","):
        images = args.images if name != "mlp" else None
        wall, cpu, n, epochs, steps = run_case(name, device, repeats, images, args.quick)
        h, pl = common.med(wall["harness"]), common.med(wall["plain"])
        ratio, cpu_ratio = h / pl, common.med(cpu["harness"]) / common.med(cpu["plain"])
        print(f"{name:10s} {h:10.3f} {pl:10.3f} {ratio:6.2f} {cpu_ratio:9.2f}   "
              f"({n} images, {steps} steps x {epochs} epoch(s))")
        figures[f"{name} harness/plain"] = ratio
        figures[f"{name} harness/plain cpu"] = cpu_ratio
        sizes.append(f"{name} {n} imgs x {epochs} ep")
    prec = "bf16 autocast" if device.startswith("cuda") else "fp32"
    common.record(args, "bench_overhead", device, figures, f"median of {repeats}; {'; '.join(sizes)}; {prec}")


if __name__ == "__main__":
    main()
