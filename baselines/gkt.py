"""Gated Knowledge Transfer (GKT), Chundawat, Tarun, Mandal & Kankanhalli, "Zero-Shot Machine Unlearning",
IEEE TIFS'23.

Data-free: no real image is read. A generator G(z) makes pseudo-samples; the gate (the paper's band-pass
filter) drops every one to which the original (teacher) gives more than ``gate_threshold`` probability for
a forget class, so knowledge of the forget classes is never transferred. Each pseudo-batch draws one z and
reuses it: one generator step maximising KL(teacher || student), then ``student_steps`` student steps
minimising KL + beta * attention transfer (Zagoruyko & Komodakis, ICLR'17), all on the gated samples.

As the authors' notebook runs it (ayushkumartarun/zero-shot-unlearning@e888197, unlearn.py:9-139 and
1_class_mnist_allcnn.ipynb cells 11-18): DCGAN-style generator, batch 256, z_dim 128, the same z for the 11
steps of a pseudo-batch, 4,000 pseudo-batches; KL as ``F.kl_div``'s default element-mean; attention term
beta = 250 summed over the conv activations; Adam 1e-3 for both, gradient norm clipped at 5. The student
(freshly initialised) trains in *eval* mode: the notebook's ``evaluate`` sets eval and nothing sets train
again. The generator's plateau scheduler is stepped every 50 pseudo-batches on a stale constant
(``history[0]["Loss"]``), so its lr halves at every third evaluation; that is reproduced. The student's
plateau scheduler reads a held-out retain-class validation loss, which a zero-shot method does not have:
the student lr stays constant (the one deviation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import frozen_copy, kl_to_teacher, reinitialise
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import Choice, Float, Int


def generator(z_dim: int, hidden: int, in_shape) -> nn.Module:
    """An MLP generator (``generator: mlp``): z -> one normalised image; the closing affine-free BatchNorm
    keeps pseudo-samples standardised, as real normalised inputs are."""
    n = math.prod(in_shape)
    return nn.Sequential(nn.Linear(z_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, n),
                         nn.BatchNorm1d(n, affine=False), nn.Unflatten(1, tuple(in_shape)))


def conv_generator(z_dim: int, in_shape) -> nn.Module:
    """The authors' generator (zero-shot-unlearning@e888197 unlearn.py:54-87): Linear -> 128 x s x s, BN,
    two (x2 nearest upsample, 3x3 conv, BN, LeakyReLU 0.2) stages, a last conv to C channels, affine BN.
    They fix s = 8 and pick the last kernel, padding 1, to hit the image size: 3x3 for 32x32, 7x7 for
    28x28, i.e. kernel = 4s + 3 - side. Rule here, per side: s = 8 for their two sizes (28, 32), else the
    smallest seed whose 4x upsampling covers the side, ceil(side / 4) (kernel 3 to 6), with that formula."""
    c, h, w = in_shape
    sh, sw = (8 if side in (28, 32) else math.ceil(side / 4) for side in (h, w))
    return nn.Sequential(
        nn.Linear(z_dim, 128 * sh * sw), nn.Unflatten(1, (128, sh, sw)), nn.BatchNorm2d(128),
        nn.Upsample(scale_factor=2), nn.Conv2d(128, 128, 3, padding=1), nn.BatchNorm2d(128),
        nn.LeakyReLU(0.2),
        nn.Upsample(scale_factor=2), nn.Conv2d(128, 64, 3, padding=1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
        nn.Conv2d(64, c, (4 * sh + 3 - h, 4 * sw + 3 - w), padding=1), nn.BatchNorm2d(c))


def gated_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) as ``F.kl_div``'s default reduction gives it on the kept pseudo-samples: the
    mean over (kept sample, class) entries, i.e. the per-sample KL / number of classes (0 when none kept)."""
    per_sample = kl_to_teacher(student_logits, teacher_logits, reduction="none") / student_logits.shape[1]
    return (per_sample * keep).sum() / keep.sum().clamp_min(1)


def attention_map(a: torch.Tensor) -> torch.Tensor:
    """Attention of a feature map (Zagoruyko & Komodakis, ICLR'17): channel-mean of squares, flattened,
    l2-normalised per sample."""
    return F.normalize(a.float().pow(2).mean(1).flatten(1))


def attention_loss(student_acts, teacher_acts, keep: torch.Tensor) -> torch.Tensor:
    """Sum over layers of the mean squared attention difference over (kept sample, position) entries."""
    total = keep.new_zeros((), dtype=torch.float32)
    for s, t in zip(student_acts, teacher_acts):
        per_sample = (attention_map(s) - attention_map(t)).pow(2).mean(1)
        total = total + (per_sample * keep).sum() / keep.sum().clamp_min(1)
    return total


class ActivationTap:
    """Records the 4-D outputs of a model's activation modules while active (the conv blocks' outputs the
    authors' models return for the attention term); an MLP or ViT has none, so the term is 0 there."""

    KINDS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU)

    def __init__(self, model: nn.Module):
        self.acts: list[torch.Tensor] = []
        self.on = False
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, self.KINDS)]

    def _hook(self, module, inputs, output):
        if self.on and output.dim() == 4:
            self.acts.append(output)

    def run(self, model: nn.Module, x: torch.Tensor):
        self.acts, self.on = [], True
        try:
            return model(x), self.acts
        finally:
            self.on = False

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class ClippedAdam(torch.optim.Adam):
    """Adam that clips the gradient norm of its parameters first (the authors clip both nets at 5)."""

    def __init__(self, params, lr: float, max_norm: float):
        super().__init__(params, lr=lr)
        self.max_norm = max_norm

    def step(self, closure=None):
        torch.nn.utils.clip_grad_norm_([p for g in self.param_groups for p in g["params"]], self.max_norm)
        return super().step(closure)


class PseudoBatches:
    """Batches ``(x, keep)`` for ``fit``, following the authors' loop: one z per pseudo-batch of
    1 + ``student_steps`` draws of G(z); a draw the gate empties is skipped (it does not count); the first
    kept draw takes a generator step, the others are yielded for the student steps. Every ``evaluate_every``
    pseudo-batches the generator's plateau scheduler steps on a constant (the authors' stale value) and the
    generator is snapshotted; after ``patience`` empty draws in a row it is restored from the snapshot
    before the latest, as the authors do (they then retry for ever); after 2 x ``patience`` the remaining
    steps get empty batches, which change nothing."""

    def __init__(self, gen, teacher, student, iterations, student_steps, batch_size, z_dim, lr, device, gate,
                 max_norm: float = 5.0, evaluate_every: int = 50, patience: int = 100):
        self.gen, self.teacher, self.student, self.gate = gen, teacher, student, gate
        self.iterations, self.student_steps = iterations, student_steps
        self.batch_size, self.z_dim = batch_size, z_dim
        self.device, self.evaluate_every, self.patience = device, evaluate_every, patience
        self.opt = ClippedAdam(gen.parameters(), lr, max_norm)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="min", factor=0.5, patience=2)
        self.kept: list[torch.Tensor] = []
        self.gave_up = False

    def __len__(self) -> int:
        return self.iterations * self.student_steps

    def _snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.gen.state_dict().items()}

    def _generator_step(self, x, keep) -> None:
        self.student.eval()
        loss = -gated_kl(self.student(x), self.teacher(x), keep)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.student.zero_grad(set_to_none=True)  # the generator step must not leak into the student

    def __iter__(self):
        repeat = 1 + self.student_steps
        draws = idx = done = empty = yielded = 0
        snapshots = [self._snapshot()]
        while done < self.iterations:
            if draws % repeat == 0:  # the authors' loader redraws z every n_repeat_batch calls, kept or not
                z = torch.randn(self.batch_size, self.z_dim, device=self.device)
            draws += 1
            with torch.set_grad_enabled(idx % repeat == 0):  # only a generator step needs G's graph
                x = self.gen(z)
            with torch.no_grad():
                keep = self.gate(self.teacher(x))
            self.kept.append(keep.float().mean())
            if not bool(keep.any()):
                empty += 1
                if empty > 2 * self.patience:
                    self.gave_up = True
                    for _ in range(len(self) - yielded):
                        yield x.detach(), keep
                    return
                if empty > self.patience:
                    self.gen.load_state_dict(snapshots[0])
                continue
            empty = 0
            if idx % repeat == 0:
                self._generator_step(x, keep)
            else:
                yielded += 1
                yield x.detach(), keep
            if (idx + 1) % repeat == 0:
                if done % self.evaluate_every == 0:
                    self.sched.step(0.0)
                    snapshots = [snapshots[-1], self._snapshot()]
                done += 1
            idx += 1


class GKT(Method):
    """GKT (Chundawat et al. TIFS'23): distil the original on gated generator samples; zero-shot."""

    regime = Regime.ZERO_SHOT
    hparams = {"iterations": Int(ge=1), "student_steps": Int(ge=1), "batch_size": Int(ge=2),
               "z_dim": Int(ge=1), "hidden": Int(ge=1), "generator_lr": Float(gt=0),
               "student_lr": Float(gt=0), "gate_threshold": Float(gt=0, lt=1), "attention_beta": Float(ge=0),
               "max_norm": Float(gt=0),
               "generator": Choice("conv", "mlp")}

    def __init__(self, iterations: int = 4000, student_steps: int = 10, batch_size: int = 256,
                 z_dim: int = 128, hidden: int = 256, generator_lr: float = 1e-3, student_lr: float = 1e-3,
                 gate_threshold: float = 0.01, attention_beta: float = 250.0, max_norm: float = 5.0,
                 generator: str = "conv"):
        super().__init__()
        self.iterations, self.student_steps = int(iterations), int(student_steps)
        self.batch_size = int(batch_size)
        self.z_dim, self.hidden, self.generator = int(z_dim), int(hidden), str(generator)
        self.generator_lr, self.student_lr = float(generator_lr), float(student_lr)
        self.gate_threshold = float(gate_threshold)
        self.attention_beta, self.max_norm = float(attention_beta), float(max_norm)
        self.in_shape = None

    def validate(self, model, info) -> None:
        self.in_shape = tuple(info["in_shape"])

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        # the input shape comes from validate(); without it, the unseen pool (allowed in this regime) has it
        in_shape = self.in_shape or tuple(data.unseen.x.shape[1:])
        teacher, forget = frozen_copy(model), list(data.forget_classes)
        # the student starts untrained, as in the paper: it learns only what the gate lets through
        reinitialise(model)
        gen = (conv_generator(self.z_dim, in_shape) if self.generator == "conv"
               else generator(self.z_dim, self.hidden, in_shape)).to(data.device).train()

        def gate(teacher_logits):  # keep the pseudo-samples the teacher does not see as a forget class
            return teacher_logits.float().softmax(1)[:, forget].sum(1) <= self.gate_threshold

        batches = PseudoBatches(gen, teacher, model, self.iterations, self.student_steps, self.batch_size,
                                self.z_dim, self.generator_lr, data.device, gate, self.max_norm)
        tap_s, tap_t = ActivationTap(model), ActivationTap(teacher)

        def loss(student, batch):
            x, keep = batch
            student.eval()  # the authors' student never returns to train mode (see the module docstring)
            if not bool(keep.any()):  # a no-op step: no gradient reaches any parameter
                return x.new_zeros((), requires_grad=True)
            with torch.no_grad():
                t, t_acts = tap_t.run(teacher, x)
            s, s_acts = tap_s.run(student, x)
            return gated_kl(s, t, keep) + self.attention_beta * attention_loss(s_acts, t_acts, keep)

        try:
            curve = data.fit(model, batches, loss, lambda p: ClippedAdam(p, self.student_lr, self.max_norm),
                             epochs=1)
        finally:
            tap_s.remove()
            tap_t.remove()
        self.extra_metrics.update({"gkt/final_loss": curve[-1] if curve else float("nan"),
                                   "gkt/kept_frac": (float(torch.stack(batches.kept).mean()) if batches.kept
                                                     else float("nan")),
                                   "gkt/generator_lr_final": batches.opt.param_groups[0]["lr"],
                                   "gkt/gave_up": float(batches.gave_up)})
        return model.eval()
