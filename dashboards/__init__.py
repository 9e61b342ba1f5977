"""The dashboards: a Streamlit app over the public marts (business, realtime, operations,
data quality), served by `ecom dashboard up`.

A stage like the others: it imports only `ecom`, reads the warehouse as the `reader` role
(schema `analytics` only, never `raw` or `ops`) and asks Kafka only for log ends. The SQL
each page runs lives in `dashboards.queries.<page>`, so the tests and `bench/dashboard.py`
run exactly the page's queries; `dashboards.views.<page>` draws them.
"""
