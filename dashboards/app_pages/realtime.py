"""The realtime page (a script Streamlit runs; `dashboards.views.realtime` draws it)."""

from dashboards.views import realtime

realtime.render()
