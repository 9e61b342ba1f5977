"""Pure helpers of the streaming job: checkpoints, errors, progress, windows, native options."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecom.config import Settings
from ecom.errors import UserError
from ingestion.batch import parse_bound, plan_chunks
from ingestion.checkpoint import committed_offsets, planned_offsets
from ingestion.native import NATIVE_COLUMNS, connector_package, kafka_options
from ingestion.progress import batch_line, lag, parse_offsets, progress_offsets
from ingestion.sink import BatchResult
from ingestion.stream import connection_lost, explain_failure
from ingestion.windows import category_key, window_start


def _write_checkpoint(root: Path, offsets: dict[int, dict], commits: list[int]) -> None:
    (root / "offsets").mkdir(parents=True)
    (root / "commits").mkdir()
    for batch, end in offsets.items():
        (root / "offsets" / str(batch)).write_text(
            'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1}\n' + json.dumps(end) + "\n")
    for batch in commits:
        (root / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}\n')


def test_committed_and_planned_offsets_from_a_spark_checkpoint(tmp_path: Path) -> None:
    _write_checkpoint(tmp_path, {0: {"0": 5, "1": 7}, 1: {"0": 9, "1": 7}}, commits=[0])
    assert committed_offsets(tmp_path) == {"0": 5, "1": 7}
    assert planned_offsets(tmp_path) == {"0": 9, "1": 7}
    assert committed_offsets(tmp_path / "missing") is None


def test_the_user_error_inside_a_spark_failure_is_recovered() -> None:
    text = (
        "[STREAM_FAILED] Query [id = 1] terminated with exception: Traceback (most recent call "
        'last):\n  File "x.py", line 1\necom.errors.UserError: Offsets went backwards on topic '
        "t: the checkpoint\n has read up to 9.\n\n\tat org.apache.spark.Foo(Foo.scala:1)\n"
    )
    assert explain_failure(text) == \
        "Offsets went backwards on topic t: the checkpoint has read up to 9."
    assert explain_failure("java.lang.NullPointerException") is None


def test_progress_line_and_lag() -> None:
    assert parse_offsets('{"0": 5, "1": 9}') == {"0": 5, "1": 9}
    assert parse_offsets('{"ecommerce-events": {"0": 5}}') == {"0": 5}  # native format
    assert lag({"0": 10, "1": 9}, {"0": 4, "1": 9}) == {"0": 6, "1": 0}
    result = BatchResult("q", 7, rows_read=1000, valid=990, rejected=10, duplicates=2)
    line = batch_line(result, 0.5, {"0": 6, "1": 0})
    assert line == ("batch 7: 1,000 rows, 990 valid, 10 rejected (2 duplicates) in 0.50 s = "
                    "2,000 rows/s; lag p0=6 p1=0")


def test_offsets_of_a_replayed_batch_are_empty_not_an_error() -> None:
    # after a restart Spark reports the replayed batch with no latestOffset
    for nothing in (None, "", "  ", "null", "None", "{}", {}):
        assert parse_offsets(nothing) == {}
        assert progress_offsets(nothing) == {}
    assert progress_offsets("{not json") == {}  # a progress line never fails on it
    assert progress_offsets('{"0": 3}') == {"0": 3}
    with pytest.raises(ValueError):
        parse_offsets("{not json")  # a checkpoint's offsets stay strict


def test_a_lost_postgres_connection_is_one_sentence_with_the_fix() -> None:
    import psycopg2

    lost = psycopg2.OperationalError(
        "server closed the connection unexpectedly\n\tThis probably means the server "
        "terminated abnormally\n")
    error = connection_lost(lost, "events batch 4")
    assert isinstance(error, UserError)
    text = str(error)
    assert "\n" not in text
    assert text.startswith("PostgreSQL connection lost (server closed the connection "
                           "unexpectedly) while writing events batch 4")
    assert "rolled back" in text and "`ecom stack up`" in text
    assert "`ecom ingest stream`" in text and "checkpoint" in text
    # the rollback on the dead connection raises over the original error: name the original
    try:
        try:
            raise lost
        except psycopg2.OperationalError:
            raise psycopg2.InterfaceError("connection already closed") from None
    except psycopg2.InterfaceError as masked:
        assert "(server closed the connection unexpectedly)" in str(
            connection_lost(masked, "windows batch 2"))


def test_window_maths() -> None:
    ts = datetime(2026, 11, 24, 13, 47, 59, 999000, tzinfo=UTC)
    assert window_start(ts) == datetime(2026, 11, 24, 13, 45, tzinfo=UTC)
    assert window_start(datetime(2026, 11, 24, 13, 45, tzinfo=UTC)).minute == 45
    assert category_key(None) == "(none)" and category_key("books") == "books"


def test_replay_bounds_and_chunks() -> None:
    assert parse_bound("earliest", "earliest") is None
    assert parse_bound("2026-11-24T00:00:00Z", "earliest") == 1795478400000
    assert parse_bound("2026-11-24T00:00:00", "latest") == 1795478400000  # UTC if no zone
    with pytest.raises(UserError, match="ISO-8601"):
        parse_bound("yesterday", "earliest")
    chunks = plan_chunks({0: 0, 1: 10}, {0: 250, 1: 10}, 100)
    assert chunks == [({"0": 0}, {"0": 100}), ({"0": 100}, {"0": 200}),
                      ({"0": 200}, {"0": 250})]


def test_native_source_options_mirror_the_python_source() -> None:
    settings = Settings().replace(kafka_bootstrap_servers="b:9092", max_rows_per_batch=5000)
    opts = kafka_options(settings, "events")
    assert opts["kafka.bootstrap.servers"] == "b:9092"
    assert opts["subscribe"] == "events"
    assert opts["startingOffsets"] == "earliest"
    assert opts["maxOffsetsPerTrigger"] == "5000"
    assert opts["failOnDataLoss"] == "true"
    batch = kafka_options(settings, "events", starting={"0": 3}, ending={"0": 9},
                          streaming=False)
    assert json.loads(batch["startingOffsets"]) == {"events": {"0": 3}}
    assert json.loads(batch["endingOffsets"]) == {"events": {"0": 9}}
    assert "maxOffsetsPerTrigger" not in batch
    assert connector_package("4.3.0") == "org.apache.spark:spark-sql-kafka-0-10_2.13:4.3.0"
    assert "cast(key as string) as key" in NATIVE_COLUMNS
