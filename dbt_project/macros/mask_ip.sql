{% macro mask_ip(column) %}
{#- The network of an IP address instead of the address (PII stays in raw):
    IPv4 -> its /24 ('203.0.113.0/24'), IPv6 -> its /48 ('2001:db8:1::/48'),
    anything else -> 'invalid'. The patterns admit only what `inet` parses,
    so malformed input never fails the build. -#}
    case
        when {{ column }} ~ '^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$'
            then host(set_masklen({{ column }}::inet, 24)::cidr) || '/24'
        when {{ column }} ~* '^[0-9a-f]{1,4}(:[0-9a-f]{1,4}){7}$'
            or (
                {{ column }} ~* '^(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?::(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?$'
                and coalesce(array_length(
                    array_remove(string_to_array({{ column }}, ':'), ''), 1
                ), 0) <= 7
            )
            then host(set_masklen({{ column }}::inet, 48)::cidr) || '/48'
        else 'invalid'
    end
{% endmacro %}
