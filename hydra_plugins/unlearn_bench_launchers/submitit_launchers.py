"""Slurm and local submitit launchers that drop finished runs before submitting (``skip.py``): a
relaunched array asks Slurm only for the runs still to do. ``dry_run: true`` lists them and submits
nothing. Everything else is hydra-submitit-launcher's own behaviour."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

from .skip import launch_unfinished


class _SkipFinished:
    def __init__(self, dry_run: bool = False, **params) -> None:
        self.dry_run = bool(dry_run)
        super().__init__(**params)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return launch_unfinished(self, job_overrides, initial_job_idx, super().launch, self.dry_run)


class SlurmArrayLauncher(_SkipFinished, SlurmLauncher):
    """hydra-submitit-launcher's Slurm job array, less the runs already finished."""


class LocalArrayLauncher(_SkipFinished, LocalLauncher):
    """submitit's local executor (the Slurm code path on this machine), less the runs already finished."""
