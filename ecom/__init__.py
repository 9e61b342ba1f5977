"""The bottom layer every stage shares, and the composition root.

Bottom layer (imports no stage): `config` (the one Settings object), `events` (the event
contract), `errors`, `db`, `kafka_admin`, `stack` (embedded PostgreSQL + broker) and
`warehouse` (landing-schema migrations and roles).

Composition root (imports the stages, nothing imports it): `cli` (the `ecom` command) and
`demo` (`ecom demo` / `make demo`).
"""
