"""The findings study: every seed claim measured with seeds, AutoAttack and a verdict.

``results/<claim-id>/<run-name>/`` in the repository holds the small records of each run that
answers a claim (``collect.py``: config, metrics, evaluation records with their per-sample
verdicts, diagnostics and RLAB JSON, never weights or data) with a ``provenance.json`` (git
commit, command, date, machine, wall time). ``claims.py`` states each claim as data: the paper's
number and where it comes from, which records answer it and the command that produces them.
``rules.py`` computes our number from the records (mean ± std over seeds with a 95 % t
interval, the paired comparison) and the verdict, as code. ``document.py`` renders
``docs/findings.md`` (and an HTML page) from ``results/`` alone, deterministically, so a test can
check that the committed document is exactly what the committed records give.
"""
