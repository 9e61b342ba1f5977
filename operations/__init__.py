"""Operations: keeping the warehouse's size and history in check, and its data safe.

- `archive`: raw days past their retention to Parquet (any fsspec filesystem), verified
  before they leave the table, and loaded back on demand;
- `retention`: ops logs, realtime windows and date-grained marts past their retention;
- `kafka_reach`: which raw rows the broker could still replay (those stay in raw);
- `maintenance`: one run of all of it, plus the daily backup (`ecom.stack.backup`),
  each action logged in `ops.maintenance_actions`;
- `cli`: `ecom maintenance`, `ecom archive` and `ecom warehouse backup|backups|restore`.

A stage like the others: it imports the shared `ecom` layer only; the maintenance DAG
(`ecommerce_maintenance`) calls it through `ecom_pipeline.maintenance`.
"""
