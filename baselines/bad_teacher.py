"""Bad Teacher, Chundawat, Tarun, Mandal & Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in
Deep Networks Using an Incompetent Teacher", AAAI'23.

Two teachers: the original (competent) and a randomly initialised model of the same architecture
(incompetent). The student starts from the original and is distilled, sample by sample, towards the
incompetent teacher on D_f and the competent one on a random fraction of D_r (eq. 4: KL with temperature).

As the authors' code runs it (vikram2000b/bad-teaching-unlearning@f1aa988, unlearn.py:9-88, dataset.py:64-83):
D_f then a uniform ``int(fraction * |D_r|)`` sample of D_r form one set, reshuffled each epoch into batches
of 256 (last batch kept), each sample flagged forget/retain; the loss is ``F.kl_div``'s default reduction,
the mean over every (sample, class) entry, so it is the batch-mean KL divided by the number of classes,
and it is not scaled by T^2. Student in train mode, both teachers in eval mode; Adam.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import frozen_copy, random_copy, union
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import Float, Int


def kl_mean_entries(student_logits: torch.Tensor, teacher_probs: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) averaged over every (sample, class) entry and not scaled by T^2: what
    ``F.kl_div``'s default ``reduction="mean"`` gives in the PyTorch the authors used. Written out, because
    PyTorch announces that default will become ``batchmean``."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    p = teacher_probs.float()
    return (torch.xlogy(p, p) - p * log_s).mean()


class BadTeacher(Method):
    """Bad Teacher (Chundawat et al. AAAI'23): forget samples follow a random teacher, retain samples the
    original."""

    regime = Regime.FULL
    hparams = {"lr": Float(gt=0), "epochs": Int(ge=1), "batch_size": Int(ge=1),
               "retain_fraction": Float(gt=0, le=1), "temperature": Float(gt=0)}

    def __init__(self, lr: float = 1e-4, epochs: int = 1, batch_size: int = 256, retain_fraction: float = 0.3,
                 temperature: float = 1.0):
        super().__init__()
        self.lr, self.epochs, self.batch_size = float(lr), int(epochs), int(batch_size)
        self.retain_fraction, self.temperature = float(retain_fraction), float(temperature)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        good, bad = frozen_copy(model), random_copy(model)
        # the authors' random.sample(retain, int(0.3 * len(retain))): truncated, uniform over D_r
        retain = data.retain.sample(max(1, int(self.retain_fraction * len(data.retain))), data.seed)
        forget = data.forget
        # D_f first, then the D_r sample, as UnLearningData orders them; the label is the "unlearn" flag
        mixed = union(forget, retain, torch.ones_like(forget.y), torch.zeros_like(retain.y))
        t = self.temperature

        def loss(student, batch):
            x, flag = batch
            with torch.no_grad():  # the authors mix the two teachers' softened probabilities per sample
                f = flag[:, None].float()
                target = f * F.softmax(bad(x).float() / t, 1) + (1 - f) * F.softmax(good(x).float() / t, 1)
            return kl_mean_entries(student(x), target, t)

        curve = data.fit(model, mixed.batches(self.batch_size, shuffle=True, seed=data.seed), loss,
                         lambda p: torch.optim.Adam(p, lr=self.lr), epochs=self.epochs)
        self.extra_metrics["bad_teacher/final_loss"] = curve[-1]
        return model.eval()
