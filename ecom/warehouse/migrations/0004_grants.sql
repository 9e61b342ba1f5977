-- Privileges per lane, including tables created later by the admin (default privileges).
grant select, insert, update on all tables in schema raw, ops to {{loader}};
grant usage, select on all sequences in schema raw, ops to {{loader}};
grant select on all tables in schema raw, ops to {{transformer}};

alter default privileges in schema raw, ops grant select, insert, update on tables to {{loader}};
alter default privileges in schema raw, ops grant usage, select on sequences to {{loader}};
alter default privileges in schema raw, ops grant select on tables to {{transformer}};

-- what dbt (as transformer) creates in analytics is readable by reader
alter default privileges for role {{transformer}} in schema analytics
    grant select on tables to {{reader}};
grant select on all tables in schema analytics to {{reader}};
