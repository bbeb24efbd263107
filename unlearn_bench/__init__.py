"""unlearn-bench: a class-unlearning benchmark harness centred on LRA-NPP."""

import os

# Idle OpenMP threads spin by default; on small shared CPUs that spinning costs more than the work
# (measured in benchmarks/RESULTS.md). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
