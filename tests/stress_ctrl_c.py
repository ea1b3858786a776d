"""Stress check (not collected by pytest): Ctrl-C a two-process `tmt-prepare` at many moments.

Each round starts the prepare of `test_kill.py` (the tiny corpus repeated to 40,000 pairs, two
pool workers), waits until its pool is at work, sleeps one of the given delays (seconds), then
sends SIGINT to the whole process group, as a terminal's Ctrl-C does. A round prints its delay,
the exit status (130 expected; -2 only when the signal came after the prepare had finished and
Python was exiting; "hung" after 2 minutes), whether the log holds a traceback, and how many
processes of the group were left 2 seconds after the prepare ended (then killed).

    python tests/stress_ctrl_c.py --rounds 30 --delays 0.5 0.6 0.7 0.75 0.8 0.9
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

import test_kill  # noqa: E402
from tiny import write_tiny_parallel_corpus  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="stress_ctrl_c_"))
    corpus = folder / "corpus"
    paths = write_tiny_parallel_corpus(corpus)
    for lang in ("en", "de"):
        paths[f"train.{lang}"].write_text(paths[f"train.{lang}"].read_text("utf-8") * 100)
    outcomes: collections.Counter[tuple[str, bool, int]] = collections.Counter()
    for round_ in range(args.rounds):
        delay = args.delays[round_ % len(args.delays)]
        command = test_kill._prepare(corpus, folder / f"run{round_}", folder / f"cache{round_}")
        log = folder / f"log{round_}"
        process, _ = test_kill._start_until_workers(command, log, ignoring_sigint=True)
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:  # a hang counts as exit status "hung"
            pass
        status = "hung" if process.poll() is None else str(process.returncode)
        traceback = "Traceback" in log.read_text()
        left = test_kill._group(process.pid)
        test_kill._gone(left, timeout=2.0)
        left = test_kill._group(process.pid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        outcomes[status, traceback, len(left)] += 1
        print(f"round {round_}: delay {delay:.2f} s, exit {status}, traceback {traceback}, "
              f"processes left {len(left)}", flush=True)  # fmt: skip
    print("exit, traceback, processes left: rounds")
    for (status, traceback, left), count in sorted(outcomes.items()):
        print(f"{status}, {traceback}, {left}: {count}")
    print(f"logs in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
