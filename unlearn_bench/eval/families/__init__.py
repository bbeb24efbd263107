"""One module per metric family, each exposing ``FAMILY`` (``unlearn_bench.eval.family``); conf/eval lists
them by module name."""
