"""The operations page (a script Streamlit runs; `dashboards.views.operations` draws it)."""

from dashboards.views import operations

operations.render()
