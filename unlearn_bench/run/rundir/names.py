"""Every file a run folder holds that the harness names: the lock its writer holds, the record of an
attempt that ended without a metrics.json, and what a finished run leaves (replaced together)."""

LOCK = ".run.lock"
# failed.json: why the folder's last attempt ended without a metrics.json. Written when an attempt starts
# (status "unfinished": a run killed without warning, by SIGKILL, the out-of-memory killer or a lost node,
# can write nothing later), replaced by "failed" or "interrupted" when the attempt ends by an error or a
# signal, and removed whenever metrics.json is written (a diverged run's metrics.json, status "failed", is
# its record). It is never written beside a finished metrics.json: that folder belongs to its finished run.
FAILED = "failed.json"
METRICS = "metrics.json"
# what a finished run leaves that the next one rewrites; kept aside together when it is replaced
RESULT_FILES = (METRICS, "predictions.npz", "config.yaml", "split.json", "env.json", "per_class.csv",
                "roc.csv")
