"""Reports rebuilt from run folders: tables (``tables``, the ``unlearn-bench-report`` command), expected vs
found runs (``launches``), the spread of a cell (``spread``), paired tests (``stats``), figures (``figures``)."""
