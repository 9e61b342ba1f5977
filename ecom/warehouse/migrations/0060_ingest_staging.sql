-- Staging for ECOM_SINK_WRITER=executors (ingestion/staging.py): each Spark executor COPYs
-- its share of a micro-batch into one unlogged table per batch, created by the driver
-- from this template (`like ingest_staging.batch_template`) and dropped once the batch is
-- landed and published. The driver's one transaction moves the rows into raw.raw_events
-- and raw.rejected_events with the ledger row, so exactly-once still rests on one commit.
-- Unlogged: no WAL for rows that live seconds; after a PostgreSQL crash the tables come
-- back empty, and Spark re-runs the batch, which stages it again.

create schema if not exists ingest_staging;
grant usage, create on schema ingest_staging to {{loader}};

create unlogged table if not exists ingest_staging.batch_template (
    task            integer not null,    -- the Spark partition that staged the row
    kafka_topic     text not null,
    kafka_partition integer not null,
    kafka_offset    bigint not null,
    kafka_key       text,
    kafka_timestamp timestamptz,
    raw_size_bytes  integer,
    raw_value       text,                -- the record as text (a dead letter keeps it)
    reason_code     text,                -- null: valid for the executor
    reason_message  text,
    event_id        text,                -- canonical uuid text when valid
    user_id         text,
    session_id      text,
    event_type      text,
    event_timestamp timestamptz,
    product_id      text,
    category        text,
    price           numeric(12, 2),
    quantity        integer,
    page_url        text,
    user_agent      text,
    ip_address      text,
    raw_data        jsonb,               -- parsed by the executor's connection, in parallel
    processed       text                 -- the processed-events message, when not raw_value
);
grant select on ingest_staging.batch_template to {{loader}};
