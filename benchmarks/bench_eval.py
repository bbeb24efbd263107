"""Output collection (``evaluation.predict_logits``) against a plain NCHW forward pass in batches of 4096.

Every run collects the unlearned model's logits on five splits, so on a CPU this is the bulk of the
evaluation time. The harness picks the batch and layout from the device (``eval.batch_size: null``): on a
CPU, batches of 64 with conv weights in channels_last; on a GPU, 4096 in the layout the pipeline placed the
model in.
Figures are plain/harness (above 1: the harness is faster); CPU time on a CPU, wall time on a GPU.
"""

from __future__ import annotations

import common
import torch

from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.eval import outputs as evaluation
from unlearn_bench.models import cnn_paper, mlp, resnet18, vit_tiny


def case(name: str, factory, shape, n: int, device: str, repeats: int) -> float:
    cuda = device.startswith("cuda")
    cl = cuda and name != "mlp"  # as Context.placed does on a GPU
    x, y = common.synthetic(n, shape, 10, seed=4)
    normalizer = Normalizer((0.5,) * shape[0], (0.25,) * shape[0], device)
    subset = Subset(x.to(device), y.to(device), normalizer, "none", cl)
    torch.manual_seed(0)
    model = factory(shape, 10).to(device).eval()
    if cl:
        model = model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def plain():
        for i in range(0, n, evaluation.GPU_BATCH):
            model(subset.normalize(subset.x[i:i + evaluation.GPU_BATCH])).float().cpu()

    cpu: dict = {}
    wall = common.alternate({"harness": lambda: evaluation.predict_logits(model, subset), "plain": plain},
                            device, repeats, cpu=None if cuda else cpu)
    t = wall if cuda else cpu
    ratio = common.med(t["plain"]) / common.med(t["harness"])
    print(f"== {name} {shape}, {n} images: harness {common.spread(t['harness'])}; "
          f"plain {common.spread(t['plain'])}; plain/harness {ratio:.2f}x ({'wall' if cuda else 'CPU'} time)")
    return ratio


def main() -> None:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    device = common.pick_device(args.device)
    cuda = device.startswith("cuda")
    repeats = args.repeats or (1 if args.quick else 3)
    scale = 0.05 if args.quick else 1.0
    sizes = {"mlp": 6000, "cnn_paper": 6300, "resnet18": 10000 if cuda else 1024,
             "vit_tiny": 10000 if cuda else 512}
    factories = {"mlp": (mlp, (1, 8, 8)), "cnn_paper": (cnn_paper, (1, 28, 28)),
                 "resnet18": (resnet18, (3, 32, 32)), "vit_tiny": (vit_tiny, (3, 32, 32))}
    figures = {f"{k} plain/harness": case(k, f, shape, max(8, int(sizes[k] * scale)), device, repeats)
               for k, (f, shape) in factories.items()}
    common.record(args, "bench_eval", device, figures,
                  f"median of {repeats}; {'wall' if cuda else 'CPU'} time; "
                  + ("both with the model in channels_last, so the ratio is input layout and batching only; "
                     if cuda else "") + "images per model: "
                  + ", ".join(f"{k} {max(8, int(v * scale))}" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
