"""Hydra launchers of unlearn-bench: Ray tasks, and Slurm / local submitit jobs that drop finished runs
before submitting them (``hydra/launcher=ray_cluster``, ``slurm``, ``slurm_local``)."""
