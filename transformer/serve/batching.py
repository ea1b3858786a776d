"""Dynamic batching: requests that arrive close together are decoded as one batch.

Each request becomes a `Job`: its sentences, what they cost (source pieces + EOS, times the beam)
and a key naming the model and search settings. The `Batcher` takes the oldest job, then gathers
the queued jobs with the same key until the token budget or the sentence cap is reached, or until
the oldest job has waited `max_wait` seconds. The batch is decoded in one worker thread, off the
event loop (so `/health` answers meanwhile), and each job gets its own rows of the results. While
a batch decodes, new jobs queue up: the next batch takes them at once.

Our decoder is batch-invariant (tests/test_beam.py, tests/test_translator.py): a sentence gets
the same output alone or in any batch, so batching changes speed, never translations.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Decode = Callable[[list[str]], list[Any]]  # sentences -> one result per sentence
Observer = Callable[[int, int], None]  # told (requests, sentences) of each batch decoded


@dataclass
class Job:
    """One request's sentences, waiting to be decoded.

    Attributes:
        key: jobs with equal keys may share a batch (same model, same search); None: never.
        sentences: the sentences to decode.
        cost: source tokens times the rows per sentence (the beam): what the budget counts.
        decode: decodes a batch of sentences; jobs with equal keys have equivalent ones.
        future: receives this job's results, one per sentence.
        arrival: when the job was queued (time.monotonic()).
    """

    key: Hashable | None
    sentences: list[str]
    cost: int
    decode: Decode
    future: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    arrival: float = field(default_factory=time.monotonic)


@dataclass
class BatchLimits:
    """When a batch stops gathering.

    Attributes:
        max_wait: seconds the oldest job may wait for company (0: take only what is queued).
        max_tokens: budget of source tokens x beam per batch (one job alone may exceed it).
        max_sentences: sentences per batch (one job alone may exceed it).
        one_request: no batching at all: each request is decoded alone (for comparison).
    """

    max_wait: float = 0.005
    max_tokens: int = 8192
    max_sentences: int = 64
    one_request: bool = False


class Batcher:
    """Gathers jobs into batches and decodes them, one batch at a time, in a worker thread."""

    def __init__(self, limits: BatchLimits, observe: Observer | None = None) -> None:
        self.limits = limits
        self.observe = observe
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.held: collections.deque[Job] = collections.deque()  # taken, but for a later batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tmt-decode")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop gathering (the queue is empty once the server has answered every request)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def run_alone(self, work: Callable[[], Any]) -> Any:
        """Run other work (an attention map) in the decoding thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    async def submit(self, job: Job) -> list[Any]:
        """Queue a job and wait for its results (cancelling the wait drops the job if unstarted)."""
        await self.queue.put(job)
        return await job.future

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            await self._decode(batch)

    async def _next(self, timeout: float | None) -> Job | None:
        """The next queued job, waiting up to `timeout` seconds (None: forever), or None."""
        try:
            if timeout is None:
                return await self.queue.get()
            if timeout <= 0:
                return self.queue.get_nowait()
            return await asyncio.wait_for(self.queue.get(), timeout)
        except (asyncio.QueueEmpty, asyncio.TimeoutError):
            return None

    async def _gather(self) -> list[Job]:
        """The oldest live job and the jobs that may join it."""
        first = None
        while first is None or first.future.done():  # done: its request timed out
            first = self.held.popleft() if self.held else await self._next(None)
        batch, cost, sentences = [first], first.cost, len(first.sentences)
        if self.limits.one_request or first.key is None:
            return batch
        full = False
        later: list[Job] = []
        waiting = list(self.held)
        self.held.clear()
        deadline = first.arrival + self.limits.max_wait
        while not full:
            job = waiting.pop(0) if waiting else await self._next(deadline - time.monotonic())
            if job is None:
                break
            if job.future.done():
                continue
            fits = (
                cost + job.cost <= self.limits.max_tokens
                and sentences + len(job.sentences) <= self.limits.max_sentences
            )
            if job.key != first.key or not fits:
                later.append(job)
                full = job.key == first.key
                continue
            batch.append(job)
            cost, sentences = cost + job.cost, sentences + len(job.sentences)
        self.held.extend(sorted([*later, *waiting], key=lambda job: job.arrival))
        return batch

    async def _decode(self, batch: list[Job]) -> None:
        """Decode the batch's sentences together and hand each job its rows."""
        batch = [job for job in batch if not job.future.done()]
        if not batch:
            return
        sentences = [s for job in batch for s in job.sentences]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, batch[0].decode, sentences)
        except Exception as error:  # a bug: every request of the batch gets a 500
            logger.exception("decoding a batch of %d sentences failed", len(sentences))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        if self.observe is not None:
            self.observe(len(batch), len(sentences))
        start = 0
        for job in batch:
            rows = results[start : start + len(job.sentences)]
            start += len(job.sentences)
            if not job.future.done():
                job.future.set_result(rows)
