-- Observability (issue #18): the read-only `monitor` role that `ecom metrics serve` logs in
-- as, pg_stat_statements and the operational views it reads, and the ledger that sends each
-- webhook notification once per failure and day.

-- ---- the monitor role: reads ops and the server's statistics, writes nothing ------------
do $$
begin
    if not exists (select from pg_roles where rolname = {{monitor_literal}}) then
        execute 'create role ' || quote_ident({{monitor_literal}}) || ' login';
    end if;
end
$$;

grant connect on database {{database}} to {{monitor}};
-- pg_monitor: every statistics view, including other roles' statement texts in
-- pg_stat_statements (pg_read_all_stats) and pg_stat_activity
grant pg_monitor to {{monitor}};
alter role {{monitor}} set jit = off;
alter role {{monitor}} set default_transaction_read_only = on;
-- a scrape never leaves a long query behind it
alter role {{monitor}} set statement_timeout = '10s';

-- ---- pg_stat_statements ------------------------------------------------------------------
-- The server must load it at start (shared_preload_libraries: the embedded cluster and the
-- compose service do); a server without the extension's files keeps working without it.
do $$
begin
    create extension if not exists pg_stat_statements with schema public;
exception when others then
    raise notice 'pg_stat_statements is not available on this server (%): '
        'ops.top_statements is not created', sqlerrm;
end
$$;

-- The statements of this database that took the most execution time, with their share of
-- the total: `select * from ops.top_statements limit 10`. The texts are shown to roles with
-- pg_read_all_stats (monitor, the admin); other roles see "<insufficient privilege>".
-- Utility commands keep their literals (the server is told not to track them:
-- pg_stat_statements.track_utility = off); any text naming a password is left out too.
do $$
begin
    if exists (select from pg_extension where extname = 'pg_stat_statements') then
        execute $view$
            create or replace view ops.top_statements as
            select
                s.queryid,
                r.rolname as role_name,
                s.calls,
                s.total_exec_time / 1000.0 as total_exec_seconds,
                s.mean_exec_time / 1000.0 as mean_exec_seconds,
                s.rows,
                s.shared_blks_hit,
                s.shared_blks_read,
                s.temp_blks_written,
                s.total_exec_time / nullif(sum(s.total_exec_time) over (), 0)
                    as share_of_total,
                left(regexp_replace(s.query, '\s+', ' ', 'g'), 1000) as query
            from public.pg_stat_statements as s
            inner join pg_database as d
                on d.oid = s.dbid and d.datname = current_database()
            left join pg_roles as r on r.oid = s.userid
            where s.query !~* 'password'
            order by s.total_exec_time desc
        $view$;
    end if;
end
$$;

-- ---- freshness of the landing tables, without granting raw to the monitor ---------------
-- A view runs with its owner's rights on the tables it reads, so the monitor sees these
-- timestamps and nothing of the rows. Every max() is an index's edge.
create or replace view ops.source_freshness as
select
    'raw_events' as source,
    (select max(ingested_at) from raw.raw_events) as loaded_at,
    (select max(event_timestamp) from raw.raw_events) as newest_event_at
union all
select
    'rejected_events' as source,
    (select max(received_at) from raw.rejected_events) as loaded_at,
    null as newest_event_at
union all
select
    'realtime_metrics' as source,
    (
        select max(m.updated_at) from raw.realtime_metrics as m
        where m.window_start >= (select max(window_start) from raw.realtime_metrics)
    ) as loaded_at,
    (select max(window_end) from raw.realtime_metrics) as newest_event_at
union all
select
    'ingest_batches' as source,
    (select max(committed_at) from ops.ingest_batches) as loaded_at,
    null as newest_event_at;

-- the exporter's windows over the ledger and the quality results
create index if not exists ingest_batches_committed_at_idx on ops.ingest_batches (committed_at);
create index if not exists data_quality_logs_run_started_at_idx
    on ops.data_quality_logs (run_started_at);

-- ---- webhook notifications: one per failure and day ------------------------------------
-- `dedupe_key` names what failed and for which day (e.g. `quality_gate|raw|2026-03-01`): a
-- repeat (a retry, a rerun, the CLI after the DAG) only counts an occurrence. A sender
-- claims the row (`claim_token`) before it posts; a failed post, or a claim older than a
-- few minutes (its process died), lets the next occurrence send. Written by the loader
-- (the gates and the Airflow callbacks run as the loader), read by the monitor.
create table if not exists ops.notifications (
    dedupe_key    text primary key,
    kind          text not null,
    logical_date  date,
    title         text not null,
    status        text not null check (status in ('sending', 'sent', 'failed')),
    claim_token   text not null,
    claimed_at    timestamptz not null default now(),
    attempts      integer not null default 1,
    occurrences   integer not null default 1,
    first_seen_at timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    sent_at       timestamptz,
    error_text    text
);

grant usage on schema ops to {{monitor}};
grant select on all tables in schema ops to {{monitor}};
alter default privileges in schema ops grant select on tables to {{monitor}};
grant select, insert, update on ops.notifications to {{loader}};
