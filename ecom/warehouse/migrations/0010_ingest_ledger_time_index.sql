-- The ingest ledger by commit time: the dashboards read it live (the batches of the last
-- hours, the newest batch, the offsets since the last dbt run) and dbt's ledger rollups
-- read only what is new since their last run. A streaming job with a 1-second trigger
-- commits 86,400 batches a day, so without this every such read scans the whole history.

create index if not exists ingest_batches_committed_at_idx
    on ops.ingest_batches (committed_at);
