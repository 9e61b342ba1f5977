{{
    config(
        materialized='incremental',
        unique_key='user_agent_hash',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['user_agent_hash'], 'unique': True}],
    )
}}

{%- if is_incremental() %}
{%- set changes = upstream_changes(ref('int_events_sessionized')) %}
{%- endif %}

with

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() -%}
    where
        {{ date_in('event_date', changes.dates) }}
        and {{ changed_since('sessionized_at', changes.watermark) }}
    {%- endif %}

),

agents as (

    select distinct user_agent
    from events
    where user_agent is not null

),

parsed as (

    select
        md5(user_agent) as user_agent_hash,
        user_agent,

        case
            when user_agent ~* '(bot|crawler|spider|slurp|headless)'
                then 'bot'
            when user_agent ~* '(ipad|tablet|kindle|silk/|playbook)'
                then 'tablet'
            when user_agent ~* 'android' and user_agent !~* 'mobile'
                then 'tablet'
            when user_agent ~* '(mobi|iphone|ipod|android|windows phone)'
                then 'mobile'
            when user_agent ~* '(windows nt|macintosh|x11|cros|linux)'
                then 'desktop'
            else 'other'
        end as device_type,

        case
            when user_agent ~* '(bot|crawler|spider|slurp)' then 'Bot'
            when user_agent ~ 'Edg(e|A|iOS)?/' then 'Edge'
            when user_agent ~ '(OPR|Opera)/' then 'Opera'
            when user_agent ~ 'SamsungBrowser/' then 'Samsung Internet'
            when user_agent ~ '(Firefox|FxiOS)/' then 'Firefox'
            when user_agent ~ '(Chrome|CriOS)/' then 'Chrome'
            when user_agent ~ 'Safari/' then 'Safari'
            when user_agent ~ '(MSIE |Trident/)' then 'Internet Explorer'
            else 'Other'
        end as browser,

        coalesce(
            substring(user_agent from 'Edg(?:e|A|iOS)?/([0-9]+)'),
            substring(user_agent from '(?:OPR|Opera)/([0-9]+)'),
            substring(user_agent from 'SamsungBrowser/([0-9]+)'),
            substring(user_agent from '(?:Firefox|FxiOS)/([0-9]+)'),
            substring(user_agent from '(?:Chrome|CriOS)/([0-9]+)'),
            substring(user_agent from 'Version/([0-9]+)[.0-9]* .*Safari/'),
            substring(user_agent from 'MSIE ([0-9]+)')
        ) as browser_major_version,

        case
            when user_agent ~ '(iPhone|iPad|iPod)' then 'iOS'
            when user_agent ~ 'Android' then 'Android'
            when user_agent ~ 'Windows' then 'Windows'
            when user_agent ~ 'CrOS' then 'ChromeOS'
            when user_agent ~ '(Macintosh|Mac OS X)' then 'macOS'
            when user_agent ~ '(Linux|X11)' then 'Linux'
            else 'Other'
        end as os,

        case
            when user_agent ~ '(iPhone|iPad|iPod)'
                then replace(
                    substring(user_agent from ' OS ([0-9]+(?:_[0-9]+)?)'),
                    '_',
                    '.'
                )
            when user_agent ~ 'Android'
                then substring(user_agent from 'Android ([0-9]+(?:\.[0-9]+)?)')
            when user_agent ~ 'Windows NT'
                then
                    case substring(user_agent from 'Windows NT ([0-9.]+)')
                        when '10.0' then '10'
                        when '6.3' then '8.1'
                        when '6.2' then '8'
                        when '6.1' then '7'
                        else substring(user_agent from 'Windows NT ([0-9.]+)')
                    end
            when user_agent ~ 'Mac OS X'
                then replace(
                    substring(user_agent from 'Mac OS X ([0-9]+[_.][0-9]+)'),
                    '_',
                    '.'
                )
        end as os_version

    from agents

),

final as (

    select
        *,
        now() as updated_at
    from parsed

)

select * from final
