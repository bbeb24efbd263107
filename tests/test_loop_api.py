"""The training loop uses Lightning through its public API only: no private module or member of Lightning
(nor of the loop's own objects) is reached from outside, no Lightning hook is called by hand, no warning
filter hides Lightning's advice, and signals stay with the process."""

from __future__ import annotations

import ast
import signal
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "unlearn_bench" / "train"
# libraries whose own private members are their business (e.g. torch's _NormBase), not Lightning's
OTHER_LIBRARIES = ("torch", "tqdm", "math", "os", "sys", "time", "itertools", "logging", "contextlib")


def _modules() -> list[Path]:
    files = sorted(TRAIN.rglob("*.py"))
    assert files, TRAIN
    return files


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _lightning_hooks() -> set[str]:
    from lightning.pytorch import Callback
    from lightning.pytorch.core.hooks import ModelHooks
    return {n for cls in (ModelHooks, Callback) for n in dir(cls) if n.startswith("on_")}


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _other_library_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names
                      if a.name.split(".")[0] in OTHER_LIBRARIES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OTHER_LIBRARIES:
            names |= {a.asname or a.name for a in node.names}
    return names


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    others, hooks, found = _other_library_names(tree), _lightning_hooks(), []
    where = lambda node: f"{path.name}:{node.lineno}"  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lightning":
            if any(_private(part) for part in node.module.split(".")) or \
                    any(_private(a.name) for a in node.names):
                found.append(f"{where(node)} imports a private Lightning name from {node.module}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lightning") and any(_private(p) for p in a.name.split(".")):
                    found.append(f"{where(node)} imports the private module {a.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            root = _root(node.value)
            if root not in ("self", "cls") and root not in others:
                found.append(f"{where(node)} reaches the private member .{node.attr} of {root}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in hooks \
                and _root(node.func) != "super":  # an override handing on to Lightning's own
            found.append(f"{where(node)} calls the Lightning hook {node.func.attr}() by hand")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("filterwarnings", "simplefilter") and _root(node.func) == "warnings":
            found.append(f"{where(node)} filters warnings")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_the_loop_uses_only_lightnings_public_api(path):
    assert _violations(path) == []


def test_the_check_sees_a_private_reach_and_a_hand_called_hook(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm\n"
                   "import warnings\nwarnings.filterwarnings('ignore')\n"
                   "def f(trainer, module):\n    trainer._signal_connector.x = 1\n"
                   "    module.on_train_epoch_end()\n    return module._count\n")
    found = _violations(bad)
    assert len(found) == 4 and any("._signal_connector" in f for f in found) and \
        any("on_train_epoch_end" in f for f in found) and any("._count" in f for f in found)


def _batches():
    from unlearn_bench.data.batches import Normalizer, TensorBatches
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8, generator=g)
    return TensorBatches(x, torch.randint(0, 2, (64,), generator=g), Normalizer((0.5,), (0.25,), "cpu"), 16)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


def test_a_keyboard_interrupt_in_a_step_leaves_fit_as_it_is_and_sigint_keeps_its_handler():
    from unlearn_bench.train.loop import fit

    def loss(model, batch):
        raise KeyboardInterrupt
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), _batches(), loss, partial(torch.optim.SGD, lr=0.1), "cpu", epochs=1, progress=False)
    assert signal.getsignal(signal.SIGINT) is before


def test_fit_leaves_the_sigterm_handler_alone():
    from unlearn_bench.train.loop import cross_entropy, fit
    seen = []

    def handler(signum, frame):  # what run.interrupts installs
        raise RuntimeError

    old = signal.signal(signal.SIGTERM, handler)
    try:
        ce = cross_entropy()

        def loss(model, batch):
            seen.append(signal.getsignal(signal.SIGTERM))
            return ce(model, batch)
        fit(_model(), _batches(), loss, partial(torch.optim.SGD, lr=0.1), "cpu", epochs=1, progress=False)
        assert seen and all(h is handler for h in seen) and signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, old)


def test_an_epoch_never_asks_its_iterable_for_a_batch_past_its_length():
    """An iterable that trains as it goes (GKT's generator) must do nothing past its last batch."""
    from unlearn_bench.train.loop import cross_entropy, fit
    asked = []

    class Counted:
        def __init__(self, inner):
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            for b in self.inner:
                asked.append(1)
                yield b
            asked.append("past the end")

    fit(_model(), Counted(_batches()), cross_entropy(), partial(torch.optim.SGD, lr=0.1), "cpu", epochs=2,
        progress=False)
    assert asked == [1] * 8
