"""The project's own errors. Each message is one line: the problem, then the fix."""


def one_line(text, limit: int = 300) -> str:
    """``text`` (an exception or any object) with its whitespace collapsed, cut to ``limit`` characters:
    how another library's message is quoted inside one of ours."""
    return " ".join(str(text).split())[:limit]


class UnlearnBenchError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ConfigError(UnlearnBenchError):
    """A configuration value is invalid (checked before any training starts)."""


class DataNotFoundError(UnlearnBenchError):
    """A dataset could not be found locally or downloaded."""


class DataError(UnlearnBenchError):
    """A dataset's files were found but their content cannot be used (shapes, dtypes, labels)."""


class RegimeError(UnlearnBenchError):
    """A method asked for data outside its declared data regime."""


class CacheError(UnlearnBenchError):
    """A cache entry is unsafe to load (e.g. it holds pickled objects)."""


class Diverged(UnlearnBenchError):
    """Training produced NaN/inf loss or weights; the run is recorded as failed."""


class RunDirError(UnlearnBenchError):
    """A run directory cannot take this run: it holds another configuration's result, another process is
    writing it, or it lies outside ``runs_dir``."""


class DiskFull(UnlearnBenchError):
    """A write failed for want of space; what was half written has been removed."""

    def __init__(self, where, what: str):
        super().__init__(f"no space left on {where} while writing {what}; fix: free space or set "
                         f"cache_dir/runs_dir elsewhere")


class Interrupted(BaseException):
    """SIGTERM or SIGINT reached a run (``unlearn_bench.run.interrupts``). A BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way (Lightning's, Hydra's) records it as an
    ordinary failure and carries on; not a KeyboardInterrupt, which Lightning turns into ``sys.exit(1)``."""

    def __init__(self, signum: int):
        import signal
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")
