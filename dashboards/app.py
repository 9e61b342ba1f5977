"""The dashboards' entry point: `streamlit run dashboards/app.py` (what `ecom dashboard up`
serves). Four pages, each at its own URL path: /business, /realtime, /operations, /quality
(the dbt exposures point there); `/` opens the business page. The page scripts are in
`app_pages/` (not `pages/`, which Streamlit would also serve as a legacy multipage app)."""

from __future__ import annotations

import streamlit as st

PAGES = {  # URL path -> (title, script, icon)
    "business": ("Business", "app_pages/business.py", ":material/storefront:"),
    "realtime": ("Realtime", "app_pages/realtime.py", ":material/bolt:"),
    "operations": ("Operations", "app_pages/operations.py", ":material/monitor_heart:"),
    "quality": ("Data quality", "app_pages/quality.py", ":material/verified:"),
}



def _home() -> None:
    """`/`: the business page, at its own URL (a default page has none)."""
    st.switch_page(PAGES["business"][1])


st.set_page_config(page_title="ecom warehouse dashboards", page_icon=":material/analytics:",
                   layout="wide")
pages = [st.Page(script, title=title, icon=icon, url_path=path)
         for path, (title, script, icon) in PAGES.items()]
st.navigation([st.Page(_home, title="Home", url_path="home", default=True,
                       visibility="hidden"), *pages]).run()
