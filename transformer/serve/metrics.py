"""Prometheus metrics (prometheus_client, the `.[serve]` extra): requests, sentences, batches
formed, latency, and the process' memory and CPU, in a registry of the app's own.

- `tmt_requests_total{endpoint, status}` and `tmt_request_seconds{endpoint}` (a histogram), counted
  by an ASGI middleware for every request;
- `tmt_sentences_total{direction}`: sentences translated;
- `tmt_batches_total` and `tmt_batch_sentences` (a histogram): batches formed and their sizes
  (its _sum / _count is the mean batch size);
- `process_*`: resident memory and CPU seconds of the server.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ENDPOINTS = {"/", "/translate", "/api/translate", "/languages", "/models", "/health", "/metrics"}


class Metrics:
    """The server's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tmt_requests", "HTTP requests answered", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "tmt_request_seconds", "Time to answer a request", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.sentences = Counter("tmt_sentences", "Sentences translated", ["direction"], registry=r)
        self.batches = Counter("tmt_batches", "Batches formed and decoded", registry=r)
        self.batch_sentences = Histogram(
            "tmt_batch_sentences", "Sentences per batch", buckets=BATCH_BUCKETS, registry=r
        )
        ProcessCollector(registry=r)

    def batch(self, requests: int, sentences: int) -> None:
        """Count one decoded batch (the batcher's observer)."""
        self.batches.inc()
        self.batch_sentences.observe(sentences)

    def translated(self, direction: str, sentences: int) -> None:
        self.sentences.labels(direction).inc(sentences)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware: counts every HTTP request by endpoint and status, and times it."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        start = time.perf_counter()
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
