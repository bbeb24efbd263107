"""unlearn-bench: a class-unlearning benchmark harness centred on LRA-NPP."""

__version__ = "0.1.0"
