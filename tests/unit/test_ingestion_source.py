"""Offset arithmetic of the Kafka source: rate limiting, task splitting, data-loss detection."""

from __future__ import annotations

import pickle

import pytest

from ecom.errors import UserError
from ingestion.kafka_source import (
    KafkaRange,
    KafkaStreamReader,
    _parse_offsets,
    cap_offsets,
    check_not_ahead,
    split_ranges,
)


def test_cap_offsets_takes_everything_below_the_limit() -> None:
    assert cap_offsets({"0": 10, "1": 0}, {"0": 20, "1": 5}, 100) == {"0": 20, "1": 5}


def test_cap_offsets_limits_the_total_and_shares_fairly() -> None:
    end = cap_offsets({"0": 0, "1": 0, "2": 0}, {"0": 1000, "1": 10, "2": 1000}, 300)
    assert sum(end.values()) == 300
    assert end["1"] == 10  # a small backlog is taken whole
    assert abs(end["0"] - end["2"]) <= 1  # the rest is shared evenly


def test_cap_offsets_handles_new_partitions_and_tiny_limits() -> None:
    assert cap_offsets({"0": 5}, {"0": 9, "1": 3}, 2) == {"0": 6, "1": 1}  # new: from 0
    end = cap_offsets({"0": 0, "1": 0}, {"0": 7, "1": 7}, 1)
    assert sum(end.values()) == 1


def test_split_ranges_cover_every_offset_once() -> None:
    ranges = split_ranges("t", {"0": 5, "1": 0}, {"0": 130, "1": 40}, split_rows=50)
    assert [(r.partition, r.start, r.end) for r in ranges] == [
        (0, 5, 55), (0, 55, 105), (0, 105, 130), (1, 0, 40)]
    assert split_ranges("t", {"0": 7}, {"0": 7}) == []


def test_ranges_pickle_for_the_executors() -> None:
    r = KafkaRange("t", 1, 2, 3, None, 99)
    assert pickle.loads(pickle.dumps(r)) == r


def test_stream_reader_does_not_pickle_its_client() -> None:
    reader = KafkaStreamReader({"bootstrap": "x:1", "topic": "t"})
    reader._client = object()  # type: ignore[assignment]
    assert pickle.loads(pickle.dumps(reader))._client is None


def test_checkpoint_ahead_of_the_log_end_is_a_loud_error() -> None:
    check_not_ahead("t", {"0": 100, "1": 50}, {0: 100, 1: 60}, "reset")  # fine
    with pytest.raises(UserError) as err:
        check_not_ahead("t", {"0": 100, "1": 50}, {0: 7, 1: 60}, "`ecom ingest stream "
                        "--reset-checkpoint`")
    message = str(err.value)
    assert "offsets went backwards" in message.lower()
    assert "events 7..99 of partition 0 are gone" in message
    assert "--reset-checkpoint" in message


def test_offsets_options() -> None:
    assert _parse_offsets("earliest", "x") == "earliest"
    assert _parse_offsets('{"0": 4, "2": 9}', "x") == {"0": 4, "2": 9}
    with pytest.raises(UserError, match="must be 'earliest', 'latest' or a JSON object"):
        _parse_offsets("yesterday", "starting_offsets")
