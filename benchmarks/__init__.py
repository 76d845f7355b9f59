"""Performance scripts whose numbers go into docs/PERFORMANCE.md.

Each ``bench_*.py`` runs as a plain script (``python benchmarks/bench_env.py --help``), prints a table
and can write ``--json``. This is a package only so that tests can import the scripts' non-timing
logic (traces, the reference store, table and summary helpers).
"""
