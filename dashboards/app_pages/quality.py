"""The quality page (a script Streamlit runs; `dashboards.views.quality` draws it)."""

from dashboards.views import quality

quality.render()
