"""`make figures`: every experiments/<name>/analyze.py over its runs ($UNLEARN_BENCH_RUNS/<name>, else
runs/<name>; `make figures RUNS=DIR` sets it), one line per script: rebuilt (into the git-ignored
experiments/<name>/results/), or skipped with the runs folder it needs. Exits 1 when no script rebuilt
anything, or when one failed on runs it found.
Usage: python experiments/build_figures.py"""

import contextlib
import importlib.util
import io
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: Path) -> tuple[str, str]:
    """("rebuilt" | "skipped" | "failed", what to say): the script's main() with its defaults, its printed
    output kept back (the report it writes holds it)."""
    spec = importlib.util.spec_from_file_location(f"analyze_{script.parent.name}", script)
    mod = importlib.util.module_from_spec(spec)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            spec.loader.exec_module(mod)
            mod.main([])
    except SystemExit as e:  # the scripts' own one-line errors: no runs, or runs of another experiment
        if e.code in (None, 0):
            return "rebuilt", ""
        return "skipped", str(e.code).removeprefix("error: ")
    except Exception as e:  # noqa: BLE001 -- a script that broke on its runs: say where, carry on with the rest
        where = traceback.extract_tb(e.__traceback__)[-1]
        return "failed", f"{e.__class__.__name__}: {e} ({Path(where.filename).name}:{where.lineno})"
    return "rebuilt", ""


def main() -> int:
    from unlearn_bench.report.experiment import default_out

    outcomes = []
    for script in sorted(HERE.glob("*/analyze.py")):
        name = script.parent.name
        what, text = run(script)
        outcomes.append(what)
        rel = script.relative_to(HERE.parent)
        if what == "rebuilt":
            print(f"rebuilt {rel}: {default_out(name).relative_to(HERE.parent)}/", flush=True)
        else:
            print(f"{what} {rel}: {text}", flush=True)
    rebuilt, failed = outcomes.count("rebuilt"), outcomes.count("failed")
    if failed or not rebuilt:
        why = f"{failed} script(s) failed" if failed else "no script found runs to rebuild from"
        print(f"error: {why}; fix: run the experiments named above (or point RUNS= at their runs_dir)",
              file=sys.stderr)
        return 1
    print(f"{rebuilt} of {len(outcomes)} rebuilt; the skipped ones need the runs named above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
