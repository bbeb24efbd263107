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
