-- Operations (issue #17): the maintenance log, the archive's ledger, and the days whose
-- rows left a layer (the reconciliation tests excuse those days).

-- One row per action of a maintenance run (`ecom maintenance run`, the DAG
-- ecommerce_maintenance): what was done to what, how many rows and bytes, how long.
create table if not exists ops.maintenance_actions (
    action_id    bigint generated always as identity primary key,
    run_id       text not null,
    logical_date date,
    action       text not null,
    target       text not null,
    status       text not null,
    rows         bigint,
    bytes        bigint,
    seconds      double precision,
    detail       text,
    started_at   timestamptz not null,
    logged_at    timestamptz not null default now()
);
create index if not exists maintenance_actions_logged_at_idx
    on ops.maintenance_actions (logged_at);
create index if not exists maintenance_actions_run_idx on ops.maintenance_actions (run_id);

-- The archive's ledger: one row per Parquet part. A part is 'writing' from before its file
-- is written until the transaction that deletes its rows from raw marks it 'archived'; a
-- re-run removes 'writing' parts (their rows are still in raw) and starts the day again.
create table if not exists ops.archive_parts (
    table_name  text not null check (table_name in ('raw_events', 'rejected_events')),
    day         date not null,
    part        text not null,
    state       text not null check (state in ('writing', 'archived')),
    url         text not null,
    rows        bigint not null,
    id_checksum text not null,
    bytes       bigint,
    created_at  timestamptz not null default now(),
    archived_at timestamptz,
    primary key (table_name, day, part)
);

-- Days whose rows were removed from a layer at least once: 'raw' = raw events archived,
-- 'marts' = date-grained marts past their retention. Never pruned (one row per day).
create table if not exists ops.pruned_days (
    layer     text not null check (layer in ('raw', 'marts')),
    day       date not null,
    pruned_at timestamptz not null default now(),
    primary key (layer, day)
);
