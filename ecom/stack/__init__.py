"""The embedded stack: a project-private PostgreSQL cluster and the tansu Kafka-protocol broker.

`up` is idempotent, `down` stops only what `up` started (PIDs under `<data dir>/run`).
With ECOM_PG_MODE / ECOM_KAFKA_MODE = external, the matching service is left alone and only
checked and initialised (migrations, topics).
"""
