"""Neuronal path perturbation for LRA-NPP (Chang et al. 2024, arXiv 2410.23693, Sec. "Neuronal Path
Perturbation"): which weights carry a selected unit, and how they are edited.

A *unit* sits between a producer layer P (whose output row / filter makes it) and a consumer layer Q (whose
input it is). Relevance is read at Q's input, so the layer named in the config is Q; for the classifier
(``model.feature_layer``) the producer is ``model.feature_source`` (``None`` for ResNets / ViT).

Paths at the classifier (``path``):
- ``incoming_and_target_out``: P's weight row of the unit (its bias entry is kept, as the authors keep it)
  and Q's weight from the unit to each forget class (the authors' CNN / VGG / MLP variant);
- ``all_out``: Q's whole column for the unit, every class (the authors' ResNet variant);
- ``target_out``: only Q's weight from the unit to the forget class(es) (the authors' ViT variant).
At any other layer the path is the unit's filter in P (``weight[c]``, ``bias[c]``) and all its outgoing
weights in Q (``weight[:, c]``): with BatchNorm between them a zeroed filter still emits the BN shift, so the
outgoing weights are what actually disconnect it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearn_bench.errors import ConfigError

PATHS = ("auto", "incoming_and_target_out", "all_out", "target_out")
OPS = ("zero", "gaussian", "laplace")
_PARAM_LAYERS = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class UnitLayer:
    """One analysed layer: relevance is read at ``consumer``'s input, units are made by ``producer``."""

    consumer: str
    producer: str | None
    width: int
    is_classifier: bool


def _in_width(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


def _out_width(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def resolve_layers(model: nn.Module, names: list[str] | None) -> list[UnitLayer]:
    """``UnitLayer`` for each named consumer layer (default: ``model.feature_layer``).

    The producer of a non-classifier layer is the nearest preceding Linear/Conv2d in registration order
    whose output width equals the consumer's input width: right for sequential models (MLP, paper CNN, VGG,
    LeNet); for residual nets name only the classifier."""
    modules = dict(model.named_modules())
    head = getattr(model, "feature_layer", None)
    names = list(names) if names else [head]
    order = [n for n, m in model.named_modules() if isinstance(m, _PARAM_LAYERS)]
    out = []
    for name in names:
        layer = modules.get(name)
        if name is None:
            raise ConfigError(f"{type(model).__name__} does not name its classifier layer; fix: set "
                              f"model.feature_layer (one of {', '.join(order)}) and model.feature_source "
                              f"in the model's factory (README: Add a model), or name layers with "
                              f"method.layers")
        if not isinstance(layer, _PARAM_LAYERS):
            kind = "missing" if layer is None else type(layer).__name__
            raise ConfigError(f"lra_npp layer {name!r} is {kind}, not a Linear or Conv2d of "
                              f"{type(model).__name__}; fix: name one of {', '.join(order)}")
        if name == head:
            src = getattr(model, "feature_source", None)
            out.append(UnitLayer(name, src, _in_width(layer), True))
            continue
        before = order[:order.index(name)]
        prod = next((p for p in reversed(before) if _out_width(modules[p]) == _in_width(layer)), None)
        if prod is None or before[-1] != prod:
            raise ConfigError(f"lra_npp layer {name!r}: no Linear/Conv2d directly before it makes its "
                              f"{_in_width(layer)} input units (e.g. a Flatten mixes channels into "
                              f"features); "
                              f"fix: name a layer whose input units are the previous layer's outputs")
        out.append(UnitLayer(name, prod, _in_width(layer), False))
    return out


def resolve_path(model: nn.Module, path: str) -> str:
    """``auto`` -> the model's own ``lra_npp_path`` when it declares one (ViT: ``target_out``, the authors'
    head-only edit), else ``incoming_and_target_out`` when it names a ``feature_source``, else ``all_out``
    (the authors' ResNet edit)."""
    if path == "auto":
        declared = getattr(model, "lra_npp_path", None)
        if declared:
            return declared
        return "incoming_and_target_out" if getattr(model, "feature_source", None) else "all_out"
    return path


def path_masks(model: nn.Module, layer: UnitLayer, units: torch.Tensor, path: str,
               forget_classes: list[int]) -> dict[str, torch.Tensor]:
    """Boolean masks ``{parameter name: mask}`` of every weight on the paths of ``units`` in ``layer``."""
    params = dict(model.named_parameters())
    masks: dict[str, torch.Tensor] = {}

    def mark(module_name: str, attr: str, index) -> None:
        pname = f"{module_name}.{attr}"
        if pname not in params:
            return  # bias=False
        m = masks.setdefault(pname, torch.zeros_like(params[pname], dtype=torch.bool))
        m[index] = True

    units = torch.as_tensor(units, dtype=torch.long).cpu()
    if len(units) == 0:
        return masks
    q = layer.consumer
    forget = torch.as_tensor(forget_classes, dtype=torch.long)
    if layer.is_classifier:
        path = resolve_path(model, path)
        if path == "incoming_and_target_out":
            if layer.producer is None:
                raise ConfigError(f"lra_npp path incoming_and_target_out needs model.feature_source, but "
                                  f"{type(model).__name__} has none; fix: set method.path=all_out or auto")
            mark(layer.producer, "weight", units)
            mark(q, "weight", (forget[:, None], units[None, :]))
        elif path == "all_out":
            mark(q, "weight", (slice(None), units))
        elif path == "target_out":
            mark(q, "weight", (forget[:, None], units[None, :]))
        else:
            raise ConfigError(f"lra_npp path {path!r} is unknown; fix: use one of {', '.join(PATHS)}")
        return masks
    mark(layer.producer, "weight", units)
    mark(layer.producer, "bias", units)
    mark(q, "weight", (slice(None), units))
    return masks


def merge_masks(all_masks: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for masks in all_masks:
        for k, m in masks.items():
            out[k] = out[k] | m if k in out else m.clone()
    return out


@torch.no_grad()
def perturb(model: nn.Module, masks: dict[str, torch.Tensor], op: str = "zero", scale: float = 1.0,
            seed: int = 0) -> int:
    """Edit the masked weights in place: ``zero`` sets them to 0; ``gaussian`` / ``laplace`` add seeded
    N(0, scale^2) / Laplace(0, scale) noise (the paper's GN / LN baselines). Returns the count edited."""
    if op not in OPS:
        raise ConfigError(f"lra_npp op {op!r} is unknown; fix: use one of {', '.join(OPS)}")
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(int(seed))
    edited = 0
    for name in sorted(masks):
        p, m = params[name], masks[name].to(params[name].device)
        k = int(m.count_nonzero())
        edited += k
        if op == "zero":
            p.masked_fill_(m, 0)  # in place without gathering indices: cheap on 12544 x 512 layers
            continue
        if op == "gaussian":
            noise = torch.randn(k, generator=g, dtype=torch.float64) * scale
        else:  # Laplace(0, b) by inverse CDF from U(-1/2, 1/2)
            u = torch.rand(k, generator=g, dtype=torch.float64) - 0.5
            noise = -scale * u.sign() * torch.log1p(-2 * u.abs().clamp(max=0.5 - 1e-12))
        # masked_scatter_ fills in row-major order, the same order boolean indexing would use
        p.add_(torch.zeros_like(p).masked_scatter_(m, noise.to(p.dtype).to(p.device)))
    return edited
