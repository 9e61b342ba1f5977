"""Collect a micro-batch to the driver as Arrow record batches, as Spark's tasks finish.

`DataFrame.toArrow()` returns only when the last task is done, so the driver would idle while
the executors read Kafka, and the executors would idle while the driver validates and COPYs.
Spark already sends the batches to Python in the order the tasks finish (followed by their
partition order, which `toArrow` uses to reorder them); `arrow_batches` yields them as they
arrive instead, so validation and COPY overlap with the reading of the remaining ranges.
The batches carry their Kafka coordinates, so nothing depends on their order.

This uses the same PySpark internals as `toArrow` (pinned pyspark 4.3); if they move,
it falls back to `toArrow()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa


def _arrival_serializer() -> Any:
    from pyspark.serializers import UTF8Deserializer, read_int
    from pyspark.sql.pandas.serializers import ArrowStreamSerializer

    class ArrivalOrder(ArrowStreamSerializer):
        """The batches in arrival order; then the order indices are read and dropped."""

        def load_stream(self, stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
            yield from super().load_stream(stream)
            count = read_int(stream)
            if count == -1:
                raise RuntimeError(UTF8Deserializer().loads(stream))
            for _ in range(count):
                read_int(stream)

    return ArrivalOrder()


def arrow_batches(df: Any) -> Iterator[pa.RecordBatch]:
    """The rows of df as Arrow record batches, in the order Spark's tasks deliver them."""
    try:
        from pyspark.errors.exceptions.captured import unwrap_spark_exception
        from pyspark.util import _load_from_socket

        collect = df._jdf.collectAsArrowToPython
        serializer = _arrival_serializer()
    except (ImportError, AttributeError):  # pragma: no cover - other pyspark versions
        yield from df.toArrow().to_batches()
        return
    port, secret, server = collect()
    try:
        with _load_from_socket((port, secret), serializer) as stream:
            yield from stream
    finally:
        with unwrap_spark_exception():
            server.getResult()  # re-raises a failure of the Spark job
