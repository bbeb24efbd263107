"""Layer-wise relevance propagation (LRP) for LRA-NPP, on top of zennit.

One batched forward + backward pass per call: the seed is the one-hot vector of the predicted class (or of
given labels), as in the authors' TorchLRP code, so at the last Linear the epsilon rule gives
``R_i = a_i * w_{c,i} / (z_c + eps * sign(z_c))`` (sign(0) = +1, zennit's convention) and relevance sums
to about 1 (not to the logit) in bias-free ReLU networks.

Relevance "at the input of a layer" is the relevance that layer sends to its input: a forward pre-hook
(run before zennit's own) routes the layer's input through a fresh autograd node, and with the zennit
composite registered the gradient arriving at that node is the LRP relevance. Linear inputs are reduced to
(N, units) (extra token/position dims summed), Conv inputs to (N, channels) (space summed).

Rules (``composite``): ``epsilon`` (default, eps 0.1), ``gamma``, ``gamma_epsilon`` (gamma rule with an
epsilon stabiliser, TorchLRP's "gamma+epsilon"), ``alpha1_beta0``, ``alpha2_beta1``; each rule is applied to
every Conv and Linear layer, activations pass relevance through, average pools use the Norm rule, and
attention / LayerNorm get the plain gradient.
"""

import torch
from torch import nn
from zennit.core import Composite
from zennit.layer import Sum
from zennit.rules import AlphaBeta, Epsilon, Gamma, Norm, Pass
from zennit.types import Activation, AvgPool, BatchNorm, Convolution

from unlearn_bench.methods.lra_npp.canon import canonize_copy, fold_batchnorm

__all__ = [
    "RULES",
    "canonize_copy",
    "composite",
    "epsilon_closed_form",
    "feature_relevance",
    "fold_batchnorm",
    "input_relevance",
    "layer_relevance",
    "select_units",
    "topk_first_seen",
    "topk_occurrence",
]

RULES = ("epsilon", "gamma", "gamma_epsilon", "alpha1_beta0", "alpha2_beta1")


def _layer_rule(rule: str, epsilon: float, gamma: float):
    if rule == "epsilon":
        return Epsilon(epsilon=epsilon)
    if rule == "gamma":
        return Gamma(gamma=gamma)
    if rule == "gamma_epsilon":
        return Gamma(gamma=gamma, stabilizer=epsilon)
    if rule == "alpha1_beta0":
        return AlphaBeta(alpha=1.0, beta=0.0)
    if rule == "alpha2_beta1":
        return AlphaBeta(alpha=2.0, beta=1.0)
    raise ValueError(f"unknown LRP rule {rule!r}; valid rules: {', '.join(RULES)}")


def composite(rule: str, epsilon: float = 0.1, gamma: float = 0.25) -> Composite:
    """A zennit composite applying ``rule`` to every Conv/Linear layer (see module docstring)."""
    layer_hook = _layer_rule(rule, float(epsilon), float(gamma))
    pass_hook, norm_hook = Pass(), Norm()

    def module_map(ctx, name, module):
        if isinstance(module, nn.MultiheadAttention):
            return None  # zennit lists it as an activation, but Pass cannot handle its 3 inputs
        if isinstance(module, (Convolution, nn.Linear)):
            return layer_hook
        if isinstance(module, (Activation, BatchNorm)):
            return pass_hook
        if isinstance(module, (AvgPool, Sum)):
            return norm_hook
        return None

    return Composite(module_map=module_map)


def _targets(target, logits: torch.Tensor) -> torch.Tensor:
    n = logits.shape[0]
    if isinstance(target, str):
        if target != "predicted":
            raise ValueError(f"target must be 'predicted', an int or a LongTensor of shape ({n},), "
                             f"got {target!r}")
        return logits.argmax(1)
    t = torch.as_tensor(target, device=logits.device)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"target labels must be integers, got dtype {t.dtype}")
    t = t.long().expand(n) if t.dim() == 0 else t.long()
    if t.shape != (n,):
        raise ValueError(f"target has shape {tuple(t.shape)}, expected ({n},)")
    if n and (t.min() < 0 or t.max() >= logits.shape[1]):
        raise ValueError(f"target labels must lie in [0, {logits.shape[1]})")
    return t


def _reduce(module: nn.Module, r: torch.Tensor) -> torch.Tensor:
    """(N, units) for Linear inputs (extra middle dims summed), (N, channels) for channels-first inputs."""
    if r.dim() <= 2:
        return r
    if isinstance(module, nn.Linear):
        return r.flatten(1, -2).sum(1)
    return r.flatten(2).sum(2)


def _lrp_pass(model, x, layer_names, target, rule, epsilon, gamma, want_input):
    """One batched LRP pass; returns ({name: relevance}, input relevance or None, predictions)."""
    comp = composite(rule, epsilon, gamma)  # validates the rule before any work
    modules = dict(model.named_modules())
    missing = [n for n in layer_names if n not in modules]
    if missing:
        raise KeyError(f"no such layer(s) {missing} in {type(model).__name__}")
    captured: dict[str, list[torch.Tensor]] = {n: [] for n in layer_names}

    def capture(store, module, args):
        if not args or not torch.is_tensor(args[0]) or not args[0].requires_grad:
            return None
        fresh = args[0].clone()  # a node of our own: its gradient = relevance sent to this input only
        store.append(fresh)
        return (fresh,) + tuple(args[1:])

    was_training = model.training
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    handles = []
    try:
        with comp.context(model), torch.enable_grad():
            for n in dict.fromkeys(layer_names):
                handles.append(modules[n].register_forward_pre_hook(
                    lambda m, a, s=captured[n]: capture(s, m, a), prepend=True))
            logits = model(x)
            if logits.dim() != 2:
                raise ValueError(f"model must return logits of shape (N, classes), got {tuple(logits.shape)}")
            pred = logits.argmax(1).detach()
            seed = nn.functional.one_hot(_targets(target, logits), logits.shape[1]).to(logits.dtype)
            flat = [t for n in dict.fromkeys(layer_names) for t in captured[n]]
            inputs = [x] + flat
            grads = torch.autograd.grad(logits, inputs, grad_outputs=seed, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    grad_of = {id(t): g for t, g in zip(inputs, grads)}
    out = {}
    for n in layer_names:
        parts = [_reduce(modules[n], grad_of[id(t)] if grad_of[id(t)] is not None else torch.zeros_like(t))
                 for t in captured[n]]
        if not parts:
            raise RuntimeError(f"layer {n!r} was not called with a tensor input during the forward pass")
        out[n] = torch.stack(parts).sum(0).detach()
    r_in = grads[0].detach() if want_input and grads[0] is not None else None
    if want_input and r_in is None:
        r_in = torch.zeros_like(x)
    return out, r_in, pred


def layer_relevance(model: nn.Module, x: torch.Tensor, layer_names: list[str], target="predicted",
                    rule: str = "epsilon", epsilon: float = 0.1, gamma: float = 0.25
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """LRP relevance at the input of each named layer for the whole batch ``x`` in one pass.

    Returns ``({name: (N, units) or (N, channels)}, predictions (N,))``. The model is used as given
    (call ``canonize_copy`` first to fold BatchNorms); its train/eval mode is restored afterwards."""
    rel, _, pred = _lrp_pass(model, x, list(layer_names), target, rule, epsilon, gamma, want_input=False)
    return rel, pred


def _feature_layer(model: nn.Module) -> str:
    if not hasattr(model, "feature_layer"):
        raise AttributeError(f"{type(model).__name__} has no attribute 'feature_layer' (last Linear's name)")
    if not isinstance(model.feature_layer, str):
        raise TypeError(f"feature_layer must be a str, got {type(model.feature_layer).__name__}")
    return model.feature_layer


def feature_relevance(model: nn.Module, x: torch.Tensor, target="predicted", rule: str = "epsilon",
                      epsilon: float = 0.1, gamma: float = 0.25, method: str = "lrp",
                      canonize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance of the features (input of ``model.feature_layer``): ``(R (N, units), predictions (N,))``.

    ``method="lrp"`` (default) runs zennit on ``canonize_copy(model)``; ``method="closed_form"`` is the
    epsilon rule's closed form at the last Linear (same numbers, no backward pass; rule must be epsilon)."""
    name = _feature_layer(model)
    if method == "closed_form":
        _layer_rule(rule, epsilon, gamma)
        if rule != "epsilon":
            raise ValueError(f"method='closed_form' exists only for rule='epsilon', not {rule!r}")
        return epsilon_closed_form(model, x, target, epsilon=epsilon)
    if method != "lrp":
        raise ValueError(f"unknown method {method!r}; valid: 'lrp', 'closed_form'")
    net = canonize_copy(model, example=x[:1]) if canonize else model
    rel, pred = layer_relevance(net, x, [name], target, rule, epsilon, gamma)
    return rel[name], pred


@torch.no_grad()
def epsilon_closed_form(model: nn.Module, x: torch.Tensor, target="predicted", epsilon: float = 0.1
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``R_i = a_i * w_{c,i} / (z_c + eps * sign(z_c))`` at the last Linear (``model.feature_layer``), with
    ``a`` its input, ``z_c`` its output (bias included) for class c; sign(0) = +1.
    Returns (R, predictions)."""
    layer = dict(model.named_modules())[_feature_layer(model)]
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"feature_layer must be an nn.Linear, got {type(layer).__name__}")
    seen = {}

    def hook(module, args, output):
        seen["a"], seen["z"] = args[0], output

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(hook)
    try:
        logits = model(x)
    finally:
        handle.remove()
        model.train(was_training)
    if "a" not in seen:
        raise RuntimeError("feature_layer was not called during the forward pass")
    pred = logits.argmax(1)
    c = _targets(target, logits)
    a, z = seen["a"], seen["z"]
    a3, z3 = a.reshape(a.shape[0], -1, a.shape[-1]), z.reshape(z.shape[0], -1, z.shape[-1])
    z_c = z3.gather(2, c.view(-1, 1, 1).expand(-1, z3.shape[1], 1))  # (N, T, 1)
    sign = (z_c == 0).to(z_c) + z_c.sign()
    r = a3 * layer.weight[c].unsqueeze(1) / (z_c + epsilon * sign)
    return r.sum(1), pred


def input_relevance(model: nn.Module, x: torch.Tensor, target="predicted", rule: str = "epsilon",
                    epsilon: float = 0.1, gamma: float = 0.25, canonize: bool = True) -> torch.Tensor:
    """Pixel relevance heatmaps (N, H, W), summed over channels, for figures."""
    net = canonize_copy(model, example=x[:1]) if canonize else model
    _, r_in, _ = _lrp_pass(net, x, [], target, rule, epsilon, gamma, want_input=True)
    return r_in.sum(1) if r_in.dim() == 4 else r_in


def topk_occurrence(R: torch.Tensor, k: int) -> torch.Tensor:
    """Occurrence counts (units,) of each unit among the top-``k`` units (by signed relevance) of each row
    of ``R`` (N, units). Ties within a row go to the lower index."""
    if R.dim() != 2:
        raise ValueError(f"R must be (N, units), got shape {tuple(R.shape)}")
    if not 0 <= k <= R.shape[1]:
        raise ValueError(f"k={k} must lie in [0, {R.shape[1]}] (the number of units)")
    order = torch.argsort(R.detach(), dim=1, descending=True, stable=True)[:, :k]
    return torch.bincount(order.flatten().cpu(), minlength=R.shape[1]).to(R.device)


def topk_first_seen(R: torch.Tensor, k: int) -> torch.Tensor:
    """For each unit, where it first appears when the rows' top-``k`` lists (each by descending relevance)
    are read one after another: the insertion order of the authors' occurrence counter, which breaks
    ties between equal counts. Units never in a top-``k`` get ``N * k``."""
    n = R.shape[0]
    order = torch.argsort(R.detach(), dim=1, descending=True, stable=True)[:, :k].flatten().cpu()
    first = torch.full((R.shape[1],), n * k, dtype=torch.long)
    # scatter_reduce amin: the smallest position at which each unit occurs
    return first.scatter_reduce(0, order, torch.arange(order.numel()), reduce="amin")


def select_units(counts: torch.Tensor, h: int, first_seen: torch.Tensor | None = None) -> torch.Tensor:
    """The ``h`` most frequent units (LongTensor), most frequent first; ties go to the unit seen first
    (``first_seen``, see ``topk_first_seen``) or, without it, to the lower index."""
    counts = torch.as_tensor(counts)
    if counts.dim() != 1:
        raise ValueError(f"counts must be 1-D, got shape {tuple(counts.shape)}")
    if not 0 <= h <= counts.numel():
        raise ValueError(f"h={h} must lie in [0, {counts.numel()}] (the number of units)")
    idx = torch.arange(counts.numel())
    if first_seen is not None:  # two stable sorts: by first appearance, then by count
        idx = torch.argsort(torch.as_tensor(first_seen).cpu(), stable=True)
    return idx[torch.argsort(-counts.double().cpu()[idx], stable=True)][:h].long()
