-- A session id is one visit of one shopper: user_sessions keys on it alone.

select
    session_id,
    count(distinct user_id) as users
from {{ ref('int_events_sessionized') }}
group by session_id
having count(distinct user_id) > 1
