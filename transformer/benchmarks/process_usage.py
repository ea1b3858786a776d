"""What a subprocess uses: wall time, peak memory of its process tree (polled from /proc every
0.1 s, with wait4's own peak RSS), and its output lines with their arrival times."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Usage:
    """What one subprocess used: wall time, peak memory, and its output lines with arrival times."""

    seconds: float
    peak_rss: int  # bytes: max of the process's own VmHWM and the polled sum over its tree
    peak_anon: int  # bytes: polled peak of RssAnon summed over the tree
    lines: list[tuple[float, str]] = field(default_factory=list)


def _status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon (bytes) and PPid of a live process; {} once it is gone."""
    values = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as file:
            for line in file:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon"):
                    values[key] = int(rest.split()[0]) * 1024
                elif key == "PPid":
                    values[key] = int(rest)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return {}
    return values


def _tree(root: int) -> list[int]:
    """`root` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status(int(entry)).get("PPid")
            if ppid is not None:
                parents.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(parents.get(pid, []))
    return found


class _Poller(threading.Thread):
    """Polls the summed VmRSS and RssAnon of a process tree until stopped."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_anon = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            statuses = [_status(pid) for pid in _tree(self.pid)]
            self.peak_rss = max(self.peak_rss, sum(s.get("VmRSS", 0) for s in statuses))
            self.peak_anon = max(self.peak_anon, sum(s.get("RssAnon", 0) for s in statuses))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def measure(command: list[str], log: Path) -> Usage:
    """Runs `command` in the repository root, timing each output line, polling its memory."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    poller = _Poller(process.pid)
    poller.start()
    lines = []
    assert process.stdout is not None
    with log.open("w", encoding="utf-8") as out:
        for line in process.stdout:
            lines.append((time.monotonic() - started, line.rstrip("\n")))
            out.write(line)
    _, status, rusage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    poller.stop()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(text for _, text in lines[-20:])
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}); see {log}:\n{tail}")
    peak_rss = max(rusage.ru_maxrss * 1024, poller.peak_rss)
    return Usage(seconds, peak_rss, poller.peak_anon, lines)
