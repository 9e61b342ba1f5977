"""The business page (a script Streamlit runs; `dashboards.views.business` draws it)."""

from dashboards.views import business

business.render()
