{% macro source_changed_dates(source_model) %}
{#- The UTC event dates an incremental run of the current model must rebuild
    from `source_model` (the staged raw events), as ISO strings:
      1. every day of the lookback window (the newest `lookback_days` days
         before the newest event) whose event count differs between the
         source and this model: late events, and rows whose ingestion
         committed out of order;
      2. every day, however old, with an event ingested after the newest
         `ingested_at` this model already holds.
    Days without changes are not touched, so the run's cost follows the new
    data, not the history. -#}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        with

        newest_held as (
            -- the newest day this model holds (an index probe)
            select coalesce(max(event_date), '-infinity'::date) as event_date
            from {{ this }}
        ),

        window_start as (
            -- the newest event's day, minus the lookback. The source is a
            -- view with import CTEs, which PostgreSQL never flattens, so a
            -- bare max() would scan all of raw: the filter (pushed down into
            -- the view) limits it to the events since the newest held day
            -- (all of them only if none is that new: raw was pruned)
            select
                (
                    (coalesce(
                        (
                            select max(event_timestamp)
                            from {{ source_model }}
                            where event_timestamp >= (
                                select event_date::timestamp at time zone 'UTC'
                                from newest_held
                            )
                        ),
                        (select max(event_timestamp) from {{ source_model }})
                    ) at time zone 'UTC')::date
                    - {{ lookback_days() }}
                ) as lookback_start
        ),

        source_days as (
            select event_date, count(*) as events
            from {{ source_model }}
            where event_timestamp >= (
                select (lookback_start::timestamp at time zone 'UTC')
                from window_start
            )
            group by event_date
        ),

        target_days as (
            -- counted on the smallest date-led index (the deduplicated
            -- (event_date, sessionized_at) one)
            select
                event_date,
                count(*) as events
            from {{ this }}
            where event_date >= (select lookback_start from window_start)
            group by event_date
        ),

        watermark as (
            -- the newest ingestion this model holds, taken from its newest day
            -- (an index-only range; an older, very late event may hold a newer
            -- stamp: then the late-day check merely re-reads it), else from
            -- all rows
            select coalesce(
                (
                    select max(ingested_at) from {{ this }}
                    where event_date = (select event_date from newest_held)
                ),
                (select max(ingested_at) from {{ this }}),
                '-infinity'
            ) as ingested_at
        ),

        late_days as (
            select distinct event_date
            from {{ source_model }}
            where ingested_at > (select ingested_at from watermark)
        )

        select coalesce(s.event_date, t.event_date)::text as event_date
        from source_days as s
        full outer join target_days as t on s.event_date = t.event_date
        where s.events is distinct from t.events
        union
        select event_date::text from late_days
        order by 1
    {%- endset -%}
    {%- set dates = run_query(query).columns[0].values() | list -%}
    {% do log(this.identifier ~ ": rebuilding " ~ (dates | length)
        ~ " changed event date(s) " ~ (dates | join(', ')), info=true) %}
    {{ return(dates) }}
{% endmacro %}


{% macro upstream_changes(
    upstream, upstream_ts='sessionized_at', own_ts='updated_at',
    date_column='event_date'
) %}
{#- What `upstream` (re)wrote since the current model last wrote: returns
    {'watermark': max(own_ts) of this model as text (or none when empty),
     'dates': the distinct `date_column` values of upstream rows with
              upstream_ts > watermark}.
    Both timestamps come from the same database clock (now() of the writing
    transaction), and a model always runs after its upstream committed.
    `upstream` needs an index on (date_column, upstream_ts). -#}
    {%- if not execute -%}
        {{ return({'watermark': none, 'dates': []}) }}
    {%- endif -%}
    {%- set wm_query -%}
        select max({{ own_ts }})::text from {{ this }}
    {%- endset -%}
    {%- set watermark = run_query(wm_query).columns[0].values()[0] -%}
    {#- A loose index scan on upstream's (date_column, upstream_ts) index: one
        probe per date it holds for the next date, one for a row newer than the
        watermark; a plain `select distinct` would read every new row. -#}
    {%- set dates_query -%}
        with recursive held_dates as (
            (
                select {{ date_column }} as held_date
                from {{ upstream }}
                where {{ date_column }} is not null
                order by {{ date_column }}
                limit 1
            )
            union all
            select (
                select next_row.{{ date_column }}
                from {{ upstream }} as next_row
                where next_row.{{ date_column }} > held_dates.held_date
                order by next_row.{{ date_column }}
                limit 1
            )
            from held_dates
            where held_dates.held_date is not null
        )
        select held_date::text
        from held_dates
        where
            held_date is not null
            {% if watermark is not none -%}
            and exists (
                select
                from {{ upstream }} as changed_row
                where
                    changed_row.{{ date_column }} = held_dates.held_date
                    and changed_row.{{ upstream_ts }}
                    > '{{ watermark }}'::timestamptz
            )
            {%- endif %}
        order by 1
    {%- endset -%}
    {%- set dates = run_query(dates_query).columns[0].values() | list -%}
    {% do log(this.identifier ~ ": rebuilding " ~ (dates | length)
        ~ " changed date(s) " ~ (dates | join(', ')), info=true) %}
    {{ return({'watermark': watermark, 'dates': dates}) }}
{% endmacro %}


{% macro changed_since(column, watermark) %}
{#- SQL predicate `column > watermark`; true when there is no watermark. -#}
    {%- if watermark is none -%}
        true
    {%- else -%}
        {{ column }} > '{{ watermark }}'::timestamptz
    {%- endif -%}
{% endmacro %}
