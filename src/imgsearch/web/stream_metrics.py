"""The lag of a stream ``serve --consume`` reads, in ``/metrics``, read when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from imgsearch.engine.stream import StreamConsumer
from imgsearch.errors import ImgSearchError


class StreamCollector(Collector):
    """Lag and pending entries of the consumer group (XINFO GROUPS), and what this
    consumer did, by outcome."""

    def __init__(self, consumer: StreamConsumer) -> None:
        self.consumer = consumer

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = [str(self.consumer.address), self.consumer.group]
        try:
            found = self.consumer.lag()
        except ImgSearchError:
            found = {"lag": None, "pending": None}  # Redis down: say so by omission
        up = GaugeMetricFamily("imgsearch_stream_up", "1 when the stream's Redis answered "
                               "this scrape.", labels=["stream", "group"])
        up.add_metric(labels, 0 if found["pending"] is None else 1)
        yield up
        for name, text in (("lag", "Entries of the stream not yet delivered to the group."),
                           ("pending", "Entries delivered to the group, not acknowledged.")):
            value = found[name]
            family = GaugeMetricFamily(f"imgsearch_stream_{name}", text,
                                       labels=["stream", "group"])
            if value is not None:
                family.add_metric(labels, value)
            yield family
        stats = self.consumer.stats
        messages = CounterMetricFamily("imgsearch_stream_messages",
                                       "Stream messages this process applied, by outcome.",
                                       labels=["outcome"])
        for outcome in ("upserted", "unchanged", "deleted", "dead", "reclaimed"):
            messages.add_metric([outcome], getattr(stats, outcome))
        yield messages
        errors = CounterMetricFamily("imgsearch_stream_errors",
                                     "Rounds of the consumer that failed and were retried.")
        errors.add_metric([], stats.errors)
        yield errors


__all__ = ["StreamCollector"]
