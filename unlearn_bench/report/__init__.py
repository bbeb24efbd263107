"""Reports rebuilt from run folders: the ``unlearn-bench-report`` command (``tables``) over the runs
(``load``), a table's rows (``summary``), report.md (``markdown``), expected vs found runs (``launches``
records them, ``jobs`` finds them, ``expected`` counts them), the spread of a cell (``spread``), paired
tests (``stats``), figures (``figures``), one swept setting (``sweeps``) and the experiments' analyze.py
command line (``experiment``)."""
