"""`ecom metrics`: the warehouse exporter (`serve`) and a local Prometheus (`prometheus`).

The streaming job serves its own metrics (`ingestion.metrics`); this package reads what the
warehouse knows (quality gates, source freshness, reject ratio, the DAG's last run, mart
sizes, PostgreSQL's busiest statements) as the read-only `monitor` role, on each scrape.
"""
