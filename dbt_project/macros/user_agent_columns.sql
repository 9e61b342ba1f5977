{% macro user_agent_columns(column) %}
{#- The parsed columns of a user-agent string (device_type, browser,
    browser_major_version, os, os_version), as a select-list fragment. One
    definition for int_user_agents_parsed and the marts that parse inline. -#}
    case
        when {{ column }} ~* '(bot|crawler|spider|slurp|headless)'
            then 'bot'
        when {{ column }} ~* '(ipad|tablet|kindle|silk/|playbook)'
            then 'tablet'
        when {{ column }} ~* 'android' and {{ column }} !~* 'mobile'
            then 'tablet'
        when {{ column }} ~* '(mobi|iphone|ipod|android|windows phone)'
            then 'mobile'
        when {{ column }} ~* '(windows nt|macintosh|x11|cros|linux)'
            then 'desktop'
        else 'other'
    end as device_type,

    case
        when {{ column }} ~* '(bot|crawler|spider|slurp)' then 'Bot'
        when {{ column }} ~ 'Edg(e|A|iOS)?/' then 'Edge'
        when {{ column }} ~ '(OPR|Opera)/' then 'Opera'
        when {{ column }} ~ 'SamsungBrowser/' then 'Samsung Internet'
        when {{ column }} ~ '(Firefox|FxiOS)/' then 'Firefox'
        when {{ column }} ~ '(Chrome|CriOS)/' then 'Chrome'
        when {{ column }} ~ 'Safari/' then 'Safari'
        when {{ column }} ~ '(MSIE |Trident/)' then 'Internet Explorer'
        else 'Other'
    end as browser,

    coalesce(
        substring({{ column }} from 'Edg(?:e|A|iOS)?/([0-9]+)'),
        substring({{ column }} from '(?:OPR|Opera)/([0-9]+)'),
        substring({{ column }} from 'SamsungBrowser/([0-9]+)'),
        substring({{ column }} from '(?:Firefox|FxiOS)/([0-9]+)'),
        substring({{ column }} from '(?:Chrome|CriOS)/([0-9]+)'),
        substring({{ column }} from 'Version/([0-9]+)[.0-9]* .*Safari/'),
        substring({{ column }} from 'MSIE ([0-9]+)')
    ) as browser_major_version,

    case
        when {{ column }} ~ '(iPhone|iPad|iPod)' then 'iOS'
        when {{ column }} ~ 'Android' then 'Android'
        when {{ column }} ~ 'Windows' then 'Windows'
        when {{ column }} ~ 'CrOS' then 'ChromeOS'
        when {{ column }} ~ '(Macintosh|Mac OS X)' then 'macOS'
        when {{ column }} ~ '(Linux|X11)' then 'Linux'
        else 'Other'
    end as os,

    case
        when {{ column }} ~ '(iPhone|iPad|iPod)'
            then replace(
                substring({{ column }} from ' OS ([0-9]+(?:_[0-9]+)?)'),
                '_',
                '.'
            )
        when {{ column }} ~ 'Android'
            then substring({{ column }} from 'Android ([0-9]+(?:\.[0-9]+)?)')
        when {{ column }} ~ 'Windows NT'
            then
                case substring({{ column }} from 'Windows NT ([0-9.]+)')
                    when '10.0' then '10'
                    when '6.3' then '8.1'
                    when '6.2' then '8'
                    when '6.1' then '7'
                    else substring({{ column }} from 'Windows NT ([0-9.]+)')
                end
        when {{ column }} ~ 'Mac OS X'
            then replace(
                substring({{ column }} from 'Mac OS X ([0-9]+[_.][0-9]+)'),
                '_',
                '.'
            )
    end as os_version
{% endmacro %}
