"""Spark ingestion: Kafka -> validation -> PostgreSQL raw tables exactly once, dead letters,
processed-events and 5-minute realtime windows (`ecom ingest`). See ingestion/README.md."""
