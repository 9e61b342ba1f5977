-- Topic epochs: the embedded broker (memory storage) loses its topics on restart and hands
-- out offsets from 0 again. A record is identified by (topic, epoch, partition, offset);
-- `ecom ingest stream --reset-checkpoint` opens a new epoch of the topic, so new records at
-- re-used offsets land next to the old ones. Event ids stay unique across epochs.

create table if not exists ops.ingest_epochs (
    kafka_topic text not null,
    kafka_epoch integer not null,
    started_at  timestamptz not null default now(),
    primary key (kafka_topic, kafka_epoch)
);

alter table raw.raw_events add column if not exists kafka_epoch integer not null default 0;
alter table raw.raw_events drop constraint if exists raw_events_kafka_coordinates_key;
alter table raw.raw_events add constraint raw_events_kafka_coordinates_key
    unique (kafka_topic, kafka_epoch, kafka_partition, kafka_offset);

alter table raw.rejected_events add column if not exists kafka_epoch integer not null default 0;
alter table raw.rejected_events drop constraint if exists rejected_events_kafka_coordinates_key;
alter table raw.rejected_events add constraint rejected_events_kafka_coordinates_key
    unique (kafka_topic, kafka_epoch, kafka_partition, kafka_offset);

alter table ops.ingest_batches add column if not exists kafka_epoch integer not null default 0;
