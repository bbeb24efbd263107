"""The training's progress line: the stage (original, oracle, the method), the epoch out of the whole
training's, the steps of the epoch and the last epoch's mean loss, e.g. ``original epoch 2/3: 40%|...``.

On a terminal it is a tqdm bar redrawn at most every ``PROGRESS_INTERVAL_S``: a bar redrawn every step
costs more than a small model's step on CPU. Written to a file or a pipe (a cluster log) it is a plain line
at most every ``LOG_PROGRESS_INTERVAL_S`` and one at the end, none at the start: a training shorter than the
interval leaves one line, its last."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

PROGRESS_INTERVAL_S = 0.25
LOG_PROGRESS_INTERVAL_S = 30.0
STAGES = {"train": "original", "retrain": "oracle"}  # job names -> the stage a progress bar names
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


def describe(stage: str, epoch: int, epochs: int | None = None) -> str:
    """``stage epoch i/n`` for the ``epoch``-th epoch (1-based) of ``epochs`` (unknown under a step limit)."""
    return f"{stage} epoch {epoch}/{epochs}" if epochs else f"{stage} epoch {epoch}"


def is_terminal() -> bool:
    try:
        return sys.stdout.isatty()  # where the bar writes
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


class EpochBar:
    """Shows one training's progress; ``first_epoch`` epochs were done by an earlier, resumed training and
    ``epochs`` (if known) counts them too."""

    def __init__(self, stage: str, steps_per_epoch: int, first_epoch: int = 0, epochs: int | None = None,
                 interval: float | None = None):
        self.stage, self.steps, self.first_epoch, self.epochs = stage, steps_per_epoch, first_epoch, epochs
        self.interval = interval if interval is not None else (
            PROGRESS_INTERVAL_S if is_terminal() else LOG_PROGRESS_INTERVAL_S)
        self.desc, self.postfix, self.n = describe(stage, first_epoch + 1, epochs), "", 0
        self.started = self.drawn = time.monotonic()
        self.bar: tqdm | None = None

    def start_epoch(self, epoch: int) -> None:
        """``epoch``: counted from 0 within this training."""
        self.desc = describe(self.stage, self.first_epoch + epoch + 1, self.epochs)
        self.n, self.started = 0, time.monotonic()
        if self.interval >= 1.0:  # a log: lines drawn by ``_line``
            return
        if self.bar is None:
            self.bar = tqdm(total=self.steps, desc=self.desc, leave=True, dynamic_ncols=True, file=sys.stdout,
                            smoothing=0, bar_format=BAR_FORMAT, mininterval=self.interval)
        else:
            self.bar.set_description(self.desc, refresh=False)
            self.bar.reset(total=self.steps)

    def step(self) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
        elif time.monotonic() - self.drawn >= self.interval:
            self._line()

    def end_epoch(self, loss: float) -> None:
        self.postfix = f"train_loss={loss:.3g}"
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix, refresh=True)
        elif time.monotonic() - self.drawn >= self.interval:
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.interval >= 1.0:
            self._line()

    def _line(self) -> None:
        self.drawn = now = time.monotonic()
        text = tqdm.format_meter(self.n, self.steps, now - self.started, prefix=self.desc,
                                 postfix=self.postfix, bar_format=BAR_FORMAT, ncols=100)
        print(text, file=sys.stdout, flush=True)
