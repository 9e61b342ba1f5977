-- Landing tables written by ingestion. Every Kafka offset read ends in exactly one of
-- raw.raw_events (valid) or raw.rejected_events (dead letters), enforced by the unique
-- Kafka coordinates on both.

create table if not exists raw.raw_events (
    event_id        uuid primary key,
    user_id         text not null,
    session_id      text not null,
    event_type      text not null,
    event_timestamp timestamptz not null,
    product_id      text,
    category        text,
    price           numeric(12, 2),
    quantity        integer,
    page_url        text,
    user_agent      text,
    ip_address      text,
    raw_data        jsonb not null,
    kafka_topic     text not null,
    kafka_partition integer not null,
    kafka_offset    bigint not null,
    kafka_timestamp timestamptz,
    ingested_at     timestamptz not null default now(),
    constraint raw_events_kafka_coordinates_key unique (kafka_topic, kafka_partition, kafka_offset)
);
create index if not exists raw_events_event_timestamp_idx on raw.raw_events (event_timestamp);
create index if not exists raw_events_ingested_at_idx on raw.raw_events (ingested_at);

create table if not exists raw.rejected_events (
    rejected_id     bigint generated always as identity primary key,
    kafka_topic     text not null,
    kafka_partition integer not null,
    kafka_offset    bigint not null,
    kafka_key       text,
    kafka_timestamp timestamptz,
    raw_value       text,
    raw_size_bytes  integer,
    event_id        text,
    reason_code     text not null,
    reason_message  text not null,
    received_at     timestamptz not null default now(),
    constraint rejected_events_kafka_coordinates_key unique (kafka_topic, kafka_partition, kafka_offset)
);
create index if not exists rejected_events_received_at_idx on raw.rejected_events (received_at);

-- 5-minute event-time windows from the streaming job. category is never null ('(none)'
-- for page views without a product) because NULLs are distinct in a primary key.
create table if not exists raw.realtime_metrics (
    window_start    timestamptz not null,
    window_end      timestamptz not null,
    event_type      text not null,
    category        text not null,
    events          bigint not null,
    revenue         numeric(14, 2) not null default 0,
    unique_users    bigint not null,
    unique_sessions bigint not null,
    updated_at      timestamptz not null default now(),
    primary key (window_start, event_type, category)
);
