-- processed_events parses its rows' user agents itself (same macro as
-- int_user_agents_parsed): both must say the same about every user agent.

with

events as (

    select
        event_id,
        user_agent
    from {{ ref('int_events_sessionized') }}

),

processed as (

    select
        event_id,
        device_type,
        browser,
        os
    from {{ ref('processed_events') }}

),

parsed as (

    select
        user_agent_hash,
        device_type,
        browser,
        os
    from {{ ref('int_user_agents_parsed') }}

)

select processed.event_id
from processed
inner join events
    on processed.event_id = events.event_id
left join parsed
    on md5(events.user_agent) = parsed.user_agent_hash
where
    processed.device_type is distinct from coalesce(parsed.device_type, 'other')
    or processed.browser is distinct from coalesce(parsed.browser, 'Other')
    or processed.os is distinct from coalesce(parsed.os, 'Other')
