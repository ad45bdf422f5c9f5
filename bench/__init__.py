"""Benchmarks: each prints its figures next to a baseline measured in the same run.

Run them as modules from the repository root, e.g. ``.venv/bin/python -m bench.ingest``:
as scripts, their own folder would come first on ``sys.path`` and ``bench/email.py`` and
``bench/routing.py`` would hide the ``email`` and ``routing`` packages.
"""
