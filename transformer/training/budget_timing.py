"""What a time budget is planned from: the command's start, timed updates and decodes, and the
loop's own pace.

The timings run on scratch copies (model, optimizer, batch sampler) with the random state put
back afterwards, so the run's own updates are the same as if nothing had been timed. `Pace`
times the loop's updates between validations, for the re-plans (`budget.replan`).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass

import torch

from transformer.data.special import PAD_ID
from transformer.runtime import rng_state, set_rng_state
from transformer.training.session import BatchStream, Run
from transformer.training.step import UpdateStep
from transformer.training.validation import validation_bleu

WARM_UPDATES = 2  # untimed: the first calls of each kernel pay for allocation and dispatch
TIMED_UPDATES = 6
DECODE_SAMPLE = 48  # validation sentences decoded to time the search
LENGTH_FLOOR = 0.5  # the most the timed decode is scaled down for its outputs' length


@dataclass(frozen=True)
class Measurement:
    """Seconds measured in the planning session (all wall-clock).

    `started_at` is the command's start (Unix time); `planned_at` when the timings ended.
    The decode figures are for the whole validation subset and the whole test split.
    """

    started_at: float
    planned_at: float
    seconds_per_update: float
    valid_seconds: float
    test_seconds: float

    @property
    def prep_seconds(self) -> float:
        """From the command's start to the plan: imports, data, model, the timings."""
        return self.planned_at - self.started_at


class Pace:
    """The training loop's wall time per update since the last `restart` (validations are
    outside it: `restart` after each)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.updates, self._since = 0, time.perf_counter()

    def tick(self) -> None:
        """One more update done."""
        self.updates += 1

    def seconds_per_update(self) -> float:
        return (time.perf_counter() - self._since) / max(self.updates, 1)


def process_start_time() -> float:
    """When this process started (Unix time), from /proc; the current time where unknown."""
    try:
        fields = open(f"/proc/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime: clock ticks after boot (field 22 of stat)
        boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return time.time()


def _seconds_per_update(run: Run) -> float:
    """Mean wall time of TIMED_UPDATES updates on scratch copies, after WARM_UPDATES."""
    # One deepcopy: the optimizer's copy holds the copied model's parameters.
    model, optimizer = copy.deepcopy((run.model, run.optimizer))
    cfg = run.cfg
    step = UpdateStep(
        model, optimizer, torch.amp.GradScaler(run.device.type, enabled=False),
        smoothing=cfg.train.label_smoothing, pad_id=PAD_ID, device=run.device,
        precision=run.precision, clip_norm=cfg.optim.clip_norm, world_size=1,
    )  # fmt: skip
    stream = BatchStream(run.stream.pairs, copy.deepcopy(run.sampler), PAD_ID, 0)
    times = []
    for i in range(WARM_UPDATES + TIMED_UPDATES):
        began = time.perf_counter()
        result = step(stream.take(cfg.train.accum_steps), want_grad_norm=False)
        result.loss.item()  # waits for a GPU
        if i >= WARM_UPDATES:
            times.append(time.perf_counter() - began)
    return sum(times) / len(times)


def _decode_seconds(run: Run, n_valid: int, n_test: int) -> tuple[float, float]:
    """Time a beam decode of the first DECODE_SAMPLE validation sentences; scale to the
    validation subset (plus its loss pass) and to the test split.

    The untrained model's outputs are not a trained model's length: the time is scaled by the
    references' length over the outputs' (characters; at most 1, at least LENGTH_FLOOR).
    """
    split = run.prepared.splits["validation"]
    sample = split.select(range(min(DECODE_SAMPLE, len(split))))
    began = time.perf_counter()
    report = validation_bleu(
        run.model, run.prepared.tokenizer, run.cfg.decode, run.device,
        list(sample["src"]), list(sample["tgt"]), len(sample), "timing the search",
    )  # fmt: skip
    per_sentence = (time.perf_counter() - began) / max(len(sample), 1)
    # Search steps follow the output length: scale to the references' length.
    decoded = sum(len(hypothesis) for _, _, hypothesis in report.samples)
    wanted = sum(len(reference) for _, reference, _ in report.samples)
    per_sentence *= min(1.0, max(LENGTH_FLOOR, wanted / max(decoded, 1)))
    return per_sentence * n_valid, per_sentence * n_test


def measure(run: Run, started_at: float) -> Measurement:
    """Time updates and a decode on scratch copies; the run's state and RNG are unchanged."""
    saved = rng_state()
    try:
        seconds = _seconds_per_update(run)
        splits = run.prepared.splits
        n_valid = len(splits["validation"])
        if run.cfg.train.valid_max_sentences:
            n_valid = min(n_valid, run.cfg.train.valid_max_sentences)
        n_test = len(splits["test"]) if "test" in splits and run.cfg.train.evaluate_test else 0
        valid, test = _decode_seconds(run, n_valid if run.cfg.train.validate_bleu else 0, n_test)
    finally:
        set_rng_state(saved)
        run.model.train()
    # The validation loss pass: a forward over the split, about a third of an update per batch.
    tokens = sum(len(ids) + 1 for ids in splits["validation"]["tgt_ids"])
    valid += seconds / 3 * max(1.0, 2 * tokens / run.cfg.train.max_tokens)
    return Measurement(started_at, time.time(), seconds, valid, test)
