"""What every page shares: the settings, the pooled warehouse, cached loading, and the rule
that a page never shows a traceback.

`page` runs a page's body: an empty warehouse becomes "No data yet: run `make demo`", a
database that is down or refuses the login becomes its one sentence (`ecom.db` writes it),
and anything unexpected becomes one sentence on the page with the traceback in the
server's log (`ecom dashboard up` writes it under the data dir).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards.warehouse import NoData, Warehouse
from ecom.config import Settings
from ecom.errors import UserError

log = logging.getLogger("dashboards")


def settings() -> Settings:
    """The settings, read again on every run (a fixed .env takes effect on reload)."""
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def _warehouse(_settings: Settings, key: str) -> Warehouse:
    return Warehouse(_settings)


def warehouse(current: Settings) -> Warehouse:
    """The process's connection pool for these settings (a changed password gets a new one)."""
    return _warehouse(current, cache_key(current))


def cache_key(current: Settings) -> str:
    """Separates the cached pools and results of different warehouses or logins."""
    return hashlib.sha256(current.dsn("reader").encode()).hexdigest()


def page(title: str, body: Callable[[Settings], None], caption: str | None = None) -> None:
    """Draw a page: its title, then its body with every failure as one sentence."""
    st.title(title)
    if caption:
        st.caption(caption)
    guarded(lambda: body(settings()), title)


def guarded(draw: Callable[[], None], what: str = "page") -> None:
    """Run `draw`, showing any failure as one sentence (a fragment's body uses it too)."""
    try:
        draw()
    except NoData as exc:
        st.info(str(exc))
    except UserError as exc:
        st.error(str(exc))
    except Exception as exc:  # the page's last line of defence: one sentence, log the rest
        log.exception("dashboard %r failed", what)
        text = str(exc).strip()
        why = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
        st.error(f"This page could not be drawn ({why}). The dashboard's log has the "
                 "details (`ecom dashboard status` prints where it is).")


def chart(figure: alt.TopLevelMixin, data: pd.DataFrame, empty_note: str) -> None:
    """Draw a chart; when its data is empty, the (empty) chart and a note saying why."""
    height = getattr(figure, "height", None)
    st.altair_chart(figure, width="stretch",
                    height=height + 60 if isinstance(height, int) else "content")
    if data.empty:
        st.caption(f":orange[{empty_note}]")


def table(data: pd.DataFrame, empty_note: str, **options: Any) -> None:
    if data.empty:
        st.caption(f":orange[{empty_note}]")
        return
    st.dataframe(data, hide_index=True, width="stretch", **options)


def refreshed_at() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S UTC")


def refresh_button(key: str) -> None:
    """A button that drops the cached query results (the next run reads the warehouse)."""
    if st.button("Refresh now", key=key, help="Read the warehouse again now"):
        st.cache_data.clear()


def as_datetime(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Date columns as pandas datetimes (what Altair's time axes read)."""
    out = frame.copy()
    for column in columns:
        out[column] = pd.to_datetime(out[column], utc=True)
    return out
