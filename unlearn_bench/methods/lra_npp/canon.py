"""BatchNorm folding for LRP: a copy of a classifier in which every BatchNorm that directly follows a
convolution or linear layer is merged into that layer (scale/shift folded into weight/bias) and replaced
by ``nn.Identity``. In eval mode the folded copy computes the same function as the original, and LRP rules
then see one affine layer instead of an affine layer plus a BatchNorm.

Pairing: with ``example`` (one input batch) the pairs are found by tracing the forward pass (a BatchNorm
whose input tensor *is* the output of a Conv/Linear call); without it, by module registration order (a
BatchNorm that immediately follows a Conv/Linear among the leaf modules, as in torchvision's VGG/ResNets).
BatchNorms that cannot be folded (no preceding Conv/Linear, no running statistics, channel mismatch) are
left in place; zennit passes relevance through them unchanged.
"""

import copy

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]


def _compatible(layer: nn.Module, bn: nn.Module) -> bool:
    if not isinstance(layer, _FOLDABLE) or not isinstance(bn, _BN):
        return False
    if bn.running_mean is None or bn.running_var is None:
        return False  # uses batch statistics even in eval mode: not an affine map
    return layer.weight.shape[0] == bn.num_features


def _adjacent_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs, prev = [], None
    for name, mod in _leaves(model):
        if isinstance(mod, _BN) and prev is not None and _compatible(prev[1], mod):
            pairs.append((prev[0], name))
            prev = None
        else:
            prev = (name, mod)
    return pairs


@torch.no_grad()
def _traced_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    producers: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> (layer name, output kept alive)
    calls: dict[str, int] = {}
    fed: dict[str, set[str]] = {}
    handles = []

    def hook(name, module, args, output):
        calls[name] = calls.get(name, 0) + 1
        if isinstance(module, _BN) and args and torch.is_tensor(args[0]):
            src = producers.get(id(args[0]))
            fed.setdefault(name, set()).add(src[0] if src is not None else "")
        if isinstance(module, _FOLDABLE) and torch.is_tensor(output):
            producers[id(output)] = (name, output)

    try:
        for name, mod in _leaves(model):
            handles.append(mod.register_forward_hook(lambda m, a, o, n=name: hook(n, m, a, o)))
        model(example)
    finally:
        for h in handles:
            h.remove()
    modules = dict(model.named_modules())
    pairs = []
    for bn_name, sources in fed.items():
        if len(sources) != 1 or calls.get(bn_name) != 1:
            continue
        src = next(iter(sources))
        if src and calls.get(src) == 1 and _compatible(modules[src], modules[bn_name]):
            pairs.append((src, bn_name))
    return pairs


@torch.no_grad()
def fold_batchnorm(layer: nn.Module, bn: nn.Module) -> None:
    """Merge eval-mode ``bn`` (applied to ``layer``'s output) into ``layer``'s weight and bias, in place."""
    w = layer.weight
    var, mean = bn.running_var.double(), bn.running_mean.double()
    scale = torch.rsqrt(var + bn.eps)
    shift = -mean * scale
    if bn.affine:
        scale = scale * bn.weight.double()
        shift = shift * bn.weight.double() + bn.bias.double()
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device),
                                  requires_grad=w.requires_grad)
    new_w = w.double() * scale.view(-1, *([1] * (w.dim() - 1)))
    new_b = layer.bias.double() * scale + shift
    w.copy_(new_w.to(w.dtype))
    layer.bias.copy_(new_b.to(layer.bias.dtype))


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def canonize_copy(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """Deep copy of ``model`` in eval mode with each BatchNorm that follows a Conv/Linear folded into it
    and replaced by ``nn.Identity``. ``example`` (optional, a small input batch) makes the pairing exact by
    tracing the forward pass; otherwise pairs are adjacent leaf modules. Keeps ``feature_layer``."""
    out = copy.deepcopy(model).eval()
    for attr in ("feature_layer", "feature_source"):
        if hasattr(model, attr):
            setattr(out, attr, getattr(model, attr))
    pairs = _traced_pairs(out, example) if example is not None else _adjacent_pairs(out)
    modules = dict(out.named_modules())
    for layer_name, bn_name in pairs:
        fold_batchnorm(modules[layer_name], modules[bn_name])
        _replace(out, bn_name, nn.Identity())
    return out
