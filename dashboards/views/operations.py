"""Operations page: the stack's services, DAG runs and each task's duration and state,
ingestion batches landed and rejected over time, lag per partition, the latest dead letters.

Lag = the broker's log end (asked of Kafka, `ecom.kafka_offsets`) minus the offset the
ingestion ledger committed (`analytics.ingestion_partition_offsets`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboards import charts, formatting
from dashboards.queries import operations as q
from dashboards.views import common
from dashboards.warehouse import NO_DATA, Warehouse
from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_offsets import log_end_offsets
from ecom.ports import port_answers
from ecom.stack.manager import status_of

DAYS = (1, 7, 30, 90)
TTL_S = 15


@dataclass(frozen=True)
class LogEnds:
    ends: dict[int, int]
    problem: str = ""


@st.cache_data(ttl=TTL_S, show_spinner="Reading the pipeline's logs ...")
def _load(_wh: Warehouse, key: str, days: int) -> dict[str, pd.DataFrame]:
    return q.load(_wh, days)


@st.cache_data(ttl=10, show_spinner=False)
def _services(_settings: Settings, key: str) -> pd.DataFrame:
    status = status_of(_settings)
    rows = [("PostgreSQL", status.postgres), ("Kafka", status.kafka)]
    rows += [(f"topic {name}", f"{n} partition(s)") for name, n in status.topics.items()]
    if _settings.pg_mode == "embedded":
        url = f"http://127.0.0.1:{_settings.airflow_port}"
        rows.append(("Airflow UI", f"answering at {url}" if port_answers(
            "127.0.0.1", _settings.airflow_port) else "not running (`ecom airflow up`)"))
    return pd.DataFrame(rows, columns=["service", "state"])


@st.cache_data(ttl=10, show_spinner=False)
def _log_ends(_settings: Settings, key: str) -> LogEnds:
    try:
        return LogEnds(log_end_offsets(_settings, _settings.topic_events,
                                       client_id="ecom-dashboard"))
    except UserError as exc:
        return LogEnds({}, str(exc))


def lag_table(offsets: pd.DataFrame, ends: dict[int, int]) -> pd.DataFrame:
    """Per partition: the ledger's committed offset, the broker's log end, the lag."""
    partitions = sorted(set(offsets["kafka_partition"].astype(int)) | set(ends))
    committed = dict(zip(offsets["kafka_partition"].astype(int),
                         offsets["committed_offset"].astype(int), strict=True))
    rows = []
    for p in partitions:
        end, done = ends.get(p), committed.get(p, 0)
        rows.append({"partition": p, "committed offset": done, "log end": end,
                     "lag": None if end is None else end - done})
    return pd.DataFrame(rows, columns=["partition", "committed offset", "log end", "lag"])


def _body(settings: Settings) -> None:
    wh, key = common.warehouse(settings), common.cache_key(settings)
    left, _, right = st.columns([1, 4, 1], vertical_alignment="bottom")
    days = left.selectbox("Period", DAYS, index=1, key="operations_days",
                          format_func=lambda d: f"last {d} day{'s' if d > 1 else ''}")
    with right:
        common.refresh_button("operations_refresh")
    data = _load(wh, key, days)
    if data["last_batch"]["committed_at"].isna().all() and data["runs"].empty \
            and data["dead_letters"].empty:
        st.info(NO_DATA)  # nothing ever ingested or run: the services may say why
        st.subheader("Services")
        common.table(_services(settings, key), "No service to show.")
        return
    ends = _log_ends(settings, key)
    lag = lag_table(data["offsets"], ends.ends)
    runs, batches = data["runs"], data["batches"]

    cols = st.columns(5)
    if runs.empty:
        cols[0].metric("Last DAG run", "none")
    else:
        last = runs.iloc[0]
        cols[0].metric("Last DAG run", str(last["state"]),
                       help=f"logical day {last['logical_date']}, run {last['run_id']}")
    cols[1].metric("Failed runs", formatting.count((runs["state"] == "failed").sum()))
    cols[2].metric("Events landed", formatting.count(batches["rows_valid"].sum()))
    cols[3].metric("Dead letters", formatting.count(data["dead_letter_reasons"][
        "dead_letters"].sum()))
    cols[4].metric("Lag (records)", formatting.count(lag["lag"].sum()) if ends.ends else "-",
                   help="log end - committed offset, summed over partitions")
    st.caption(f"Last {days} day(s); read at {common.refreshed_at()}.")

    st.subheader("Services")
    one, two = st.columns([3, 2])
    with one:
        common.table(_services(settings, key), "No service to show.")
    with two:
        st.markdown("**Lag per partition** of `" + settings.topic_events + "`")
        if ends.problem:
            st.warning(ends.problem)
        elif (lag["lag"].dropna() < 0).any():
            st.warning("The ledger has committed past the broker's log end: the broker lost "
                       "its log (the embedded broker keeps it in memory). The next `ecom "
                       "ingest stream` stops and explains; see the README, Failure modes.")
        common.table(lag, "Nothing ingested from this topic yet.")

    st.subheader("DAG runs")
    tasks = data["tasks"]
    if runs.empty:
        st.caption(":orange[No DAG run in this period: `ecom pipeline run --date ...` or "
                   "`make demo`.]")
    else:
        common.table(runs.drop(columns=["dag_id"]), "", column_config={
            "duration_seconds": st.column_config.NumberColumn("duration (s)", format="%.0f")})
        labels = {r.run_id: f"{r.logical_date} · {r.state} · {r.run_id}"
                  for r in runs.itertuples()}
        chosen = st.selectbox("Tasks of the run", list(labels), format_func=labels.get,
                              key="operations_run")
        run_tasks = tasks[tasks["run_id"] == chosen].copy()
        run_tasks["ended_at"] = run_tasks["ended_at"].fillna(pd.Timestamp.now(tz="UTC"))
        common.chart(charts.timeline(run_tasks, "started_at", "ended_at", "task_id", "status",
                                     title="Each task's start, duration and state (latest "
                                     "attempt)", tooltip=["duration_seconds:Q", "try_number:Q",
                                                          "rows_affected:Q", "error_summary:N"]),
                     run_tasks, "No task of this run has logged yet.")
        failed = run_tasks[run_tasks["status"] == "failed"]
        if not failed.empty:
            common.table(failed[["task_id", "try_number", "error_summary"]], "")

    st.subheader("Ingestion")
    landed = common.as_datetime(batches, "hour").melt(
        id_vars="hour", value_vars=["rows_valid", "rows_rejected"], var_name="outcome",
        value_name="records")
    landed["outcome"] = landed["outcome"].map({"rows_valid": "landed",
                                               "rows_rejected": "dead letter"})
    last_batch = data["last_batch"].iloc[0]
    last_at = last_batch["committed_at"] if pd.notna(last_batch["committed_at"]) else "-"
    one, two = st.columns(2)
    with one:
        common.chart(charts.over_time(landed, "hour", "records", "outcome", mark="bar",
                                      title="Records landed and rejected per hour",
                                      y_title="records", time_unit="yearmonthdatehours"),
                     landed, f"No batch committed in this period (the last of "
                     f"{formatting.count(last_batch['batches'])} committed at "
                     f"{last_at}).")
    with two:
        reasons = data["dead_letter_reasons"]
        common.chart(charts.bars(reasons, "reason_code", "dead_letters",
                                 title="Dead letters by reason", value_title="dead letters"),
                     reasons, "No dead letter in this period.")
    st.markdown(f"**Latest {q.LATEST_BATCHES_SHOWN} micro-batches** (the ingest ledger, "
                "within the hour before the newest)")
    common.table(data["latest_batches"], "No batch committed yet.")
    st.markdown(f"**Latest {q.LATEST_DEAD_LETTERS} dead letters** (payloads stay in raw: "
                "they carry the client's IP address)")
    common.table(data["dead_letters"], "No dead letter yet.")


def render() -> None:
    common.page("Operations", _body,
                "Pipeline health: services, DAG runs, ingestion and dead letters, read live "
                "from the ops marts.")
