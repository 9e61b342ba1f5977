-- Least privilege on top of the three lanes (issue #19; tests/integration/test_security.py
-- proves each line of the README's Security table).
--   * schema public: no role of the project uses it, so nobody but the admin may even look
--     in it (PostgreSQL 15 already took CREATE on it from PUBLIC);
--   * reader: every session is read-only by default, so no statement of a reader session
--     writes even if a later grant allowed it by mistake (a session may not turn it off
--     for a write it has no privilege for anyway);
--   * loader, reader: never create roles or databases, never bypass row security.

revoke all on schema public from public;

alter role {{reader}} set default_transaction_read_only = on;

alter role {{loader}} nocreaterole nocreatedb nobypassrls;
alter role {{transformer}} nocreaterole nocreatedb nobypassrls;
alter role {{reader}} nocreaterole nocreatedb nobypassrls;
