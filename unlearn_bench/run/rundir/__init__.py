"""The run folder: every file name the harness gives it (``names``), the guards around writing it
(``guards``: inside ``runs_dir``, one writer, a finished run of another configuration replaced only with
``overwrite=true``), the record of its last attempt (``attempts``: ``failed.json`` when a run ends without
a metrics.json, ``outcome`` reading a folder back) and what a command prints when it ends (``closing``).
The names are importable from here."""

from unlearn_bench.run.rundir.attempts import (
    RESUME,
    clear_failure,
    failure,
    failures_recorded,
    mark_started,
    outcome,
    read_json,
    record_failure,
)
from unlearn_bench.run.rundir.closing import (
    REPORT,
    SHOWN,
    experiment_dir,
    mixed_note,
    other_experiments,
    run_lines,
    shown,
    sweep_lines,
    sweep_outcomes,
)
from unlearn_bench.run.rundir.guards import (
    VOLATILE,
    check_name,
    claim,
    differing_keys,
    flatten,
    inside,
    run_lock,
    set_aside,
    take_overwrite,
)
from unlearn_bench.run.rundir.names import FAILED, LOCK, METRICS, RESULT_FILES

__all__ = ["FAILED", "LOCK", "METRICS", "REPORT", "RESULT_FILES", "RESUME", "SHOWN", "VOLATILE", "check_name",
           "claim", "clear_failure", "differing_keys", "experiment_dir", "failure", "failures_recorded",
           "flatten", "inside", "mark_started", "mixed_note", "other_experiments", "outcome", "read_json",
           "record_failure", "run_lines", "run_lock", "set_aside", "shown", "sweep_lines", "sweep_outcomes",
           "take_overwrite"]
