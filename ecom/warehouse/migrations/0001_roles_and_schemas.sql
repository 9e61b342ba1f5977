-- Schemas and the three lanes of access.
--   loader      writes raw and ops (Spark sink, GE results, Airflow logs)
--   transformer reads raw and ops, owns analytics (dbt)
--   reader      reads analytics only (dashboards, analysts)
-- {{loader}}, {{transformer}}, {{reader}}, {{database}} are replaced by quoted identifiers.

do $$
begin
    if not exists (select from pg_roles where rolname = {{loader_literal}}) then
        execute 'create role ' || quote_ident({{loader_literal}}) || ' login';
    end if;
    if not exists (select from pg_roles where rolname = {{transformer_literal}}) then
        execute 'create role ' || quote_ident({{transformer_literal}}) || ' login';
    end if;
    if not exists (select from pg_roles where rolname = {{reader_literal}}) then
        execute 'create role ' || quote_ident({{reader_literal}}) || ' login';
    end if;
end
$$;

revoke all on database {{database}} from public;
grant connect on database {{database}} to {{loader}}, {{transformer}}, {{reader}};
-- temp tables: the ingest sink stages COPYs in them, dbt's incremental merges too
grant temporary on database {{database}} to {{loader}}, {{transformer}};
revoke create on schema public from public;

create schema if not exists raw;
create schema if not exists ops;
create schema if not exists analytics authorization {{transformer}};

grant usage on schema raw, ops to {{loader}}, {{transformer}};
grant usage on schema analytics to {{reader}};
-- dbt builds in analytics and in schemas it derives from it (e.g. analytics_staging):
grant create on database {{database}} to {{transformer}};
