"""What each dashboard page draws (Streamlit); the SQL is in `dashboards.queries`."""
