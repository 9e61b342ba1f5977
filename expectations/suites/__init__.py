"""Expectation suites, one module per layer; each builds its suites and names its data assets.

Suites are code (reviewable, diffable); `expectations.project.sync_project` writes them into
the file-mode GE project idempotently. Values that depend on the run (logical date, now,
thresholds from `Settings`) are suite parameters (`{"$PARAMETER": name}`, see
`expectations.params`), so the stored suites never change between runs.
"""
