"""LRA-NPP's unlearning time against one forward+backward (to the input) over the same N images.

LRA-NPP (Chang et al. 2024) is one relevance pass over N unseen images, a top-K count and a weight edit, so
its cost should be a small multiple of a single forward+backward; a larger ratio points at per-sample
loops or host round-trips. Both run in fp32 on the same normalised images (LRA-NPP's relevance is computed
in fp32 whatever the training precision). Models are untrained (timing does not depend on the weights'
values).
"""

from __future__ import annotations

import copy

import common
import torch

from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.models import cnn_paper, resnet18


def load_method():
    try:
        from unlearn_bench.methods.lra_npp import LRANPP
    except ImportError as e:
        return None, str(e)
    return LRANPP, ""


def case(name: str, factory, shape, n: int, device: str, repeats: int, LRANPP) -> dict:
    cuda = device.startswith("cuda")
    cl = cuda and shape[-1] > 1
    x, y = common.synthetic(n, shape, 10, seed=3)
    y = torch.zeros_like(y)  # the unseen pool holds forget-class (class 0) images only
    norm = Normalizer((0.5,) * shape[0], (0.25,) * shape[0], device)
    unseen = Subset(x.to(device), y.to(device), norm, "none", cl)
    torch.manual_seed(0)
    model = factory(shape, 10).to(device).eval()
    if cl:
        model = model.to(memory_format=torch.channels_last)
    method = LRANPP(n=n)
    method.validate(model, {"num_classes": 10, "forget_classes": [0], "unseen_size": n, "in_shape": shape})
    data = UnlearnData(regime=Regime.ZERO_SHOT, method="lra_npp", num_classes=10, forget_classes=[0],
                       device=device, seed=0, recipe=None, _sets={"unseen": unseen}, progress=False)

    def fwd_bwd():  # as LRA-NPP computes relevance: fp32, on the normalised pool exactly as it reads it
        xb = unseen.tensors()[0].requires_grad_(True)
        out = model(xb)
        out.max(1).values.sum().backward()
        model.zero_grad(set_to_none=True)

    t = common.alternate({
        "lra_npp": (lambda: copy.deepcopy(model), lambda m: method.unlearn(m, data)),
        "fwd_bwd": fwd_bwd,
    }, device, repeats)
    lra, fb = common.med(t["lra_npp"]), common.med(t["fwd_bwd"])
    print(f"== {name} {shape}, N={n}: lra_npp {common.spread(t['lra_npp'])}; "
          f"fwd+bwd {common.spread(t['fwd_bwd'])}; ratio {lra / fb:.1f}x")
    return {f"{name} N={n} lra_npp s": lra, f"{name} N={n} lra/fwd_bwd": lra / fb}


def main() -> None:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    device = common.pick_device(args.device)
    LRANPP, why = load_method()
    if LRANPP is None:
        print(f"bench_lra_npp: skipped, unlearn_bench.methods.lra_npp is not available ({why})")
        return
    repeats = args.repeats or (1 if args.quick else 3)
    if args.quick:
        sizes = [8]
    elif device.startswith("cuda"):
        sizes = [36, 1000]
    else:
        sizes = [36, 128]
    figures: dict = {}
    for name, factory, shape in (("cnn_paper", cnn_paper, (1, 28, 28)), ("resnet18", resnet18, (3, 32, 32))):
        for n in sizes:
            figures.update(case(name, factory, shape, n, device, repeats, LRANPP))
    common.record(args, "bench_lra_npp", device, figures, f"median of {repeats}; untrained models")


if __name__ == "__main__":
    main()
