"""Load on `tmt-serve`: concurrent clients on loopback, with and without dynamic batching.

The benchmark starts the server itself (loopback, a free port), once batched and once with
`--no-batching` (each request decoded alone), and drives it with 1, 8, 32 and 128 concurrent
clients: asyncio coroutines on keep-alive connections, each sending one test_2016_flickr
sentence per LibreTranslate `/translate` request, in turn, until the level's request count or
time bound is reached. Per level it prints sentences/s, p50 and p99 latency, the mean batch size
the server formed (from /metrics), errors (non-200, or no answer: must be 0), and the CPU share of
the load generator and of the server. `--soak MINUTES` then keeps 32 clients on the batched
server and reports its resident memory at start and end.

    python scripts/serve_benchmark.py RUN_OR_CKPT_OR_EXPORT --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

HEADER = (
    "mode      clients requests sentences/s  p50(ms)  p99(ms) mean batch errors  client CPU "
    "server CPU"
)
SERVE = "import sys; from transformer.commands.serve import main; sys.exit(main())"


@dataclass
class Level:
    """One load level's figures."""

    mode: str
    clients: int
    requests: int
    errors: int
    seconds: float
    sentences_per_second: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    client_cpu: float  # load generator CPU seconds / wall seconds (1.0 = one core)
    server_cpu: float


class Served:
    """A tmt-serve process on a free loopback port; its standard error is kept in `log`."""

    def __init__(self, model: Path, flags: list[str]) -> None:
        command = [sys.executable, "-c", SERVE, str(model), "--port", "0", *flags]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if match := re.search(r"listening on http://([\d.]+):(\d+)/", line):
                self.host, self.port = match[1], int(match[2])
                break
        else:
            raise SystemExit("tmt-serve did not start:\n" + "".join(self.log))
        threading.Thread(target=lambda: self.log.extend(self.process.stderr), daemon=True).start()
        self.url = f"http://{self.host}:{self.port}"
        for _ in range(1200):
            try:
                if self.get("/health") == '{"status":"ok"}':
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("tmt-serve did not become healthy:\n" + "".join(self.log))

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return response.read().decode()

    def metrics(self) -> dict[str, float]:
        """The unlabelled series of /metrics (name -> value)."""
        pattern = re.compile(r"^([a-z_]+) ([-+.\deE]+)$", re.MULTILINE)
        return {name: float(value) for name, value in pattern.findall(self.get("/metrics"))}

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=120)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return status, await reader.readexactly(int(length[1]) if length else 0)


async def _client(served: Served, bodies: list[bytes], take, latencies: list, errors: list):  # noqa: ANN001, ANN202
    """Send requests on one keep-alive connection while `take()` gives indices."""
    reader = writer = None
    while (i := take()) is not None:
        head = (
            f"POST /translate HTTP/1.1\r\nHost: {served.host}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(bodies[i])}\r\n\r\n"
        ).encode()
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(served.host, served.port)
            writer.write(head + bodies[i])
            await writer.drain()
            status, body = await _answer(reader)
            ok = status == 200 and b"translatedText" in body
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            ok, writer, status, body = False, None, 0, repr(error).encode()
        latencies.append(time.perf_counter() - start)
        if not ok:
            errors.append(f"{status} {body[:200].decode(errors='replace')}")
    if writer is not None:
        writer.close()


async def _drive(served: Served, bodies: list[bytes], clients: int, requests: int, seconds: float):  # noqa: ANN202
    deadline = time.monotonic() + seconds
    sent = iter(range(requests))

    def take() -> int | None:
        if time.monotonic() > deadline:
            return None
        i = next(sent, None)
        return None if i is None else i % len(bodies)

    latencies: list[float] = []
    errors: list[str] = []
    await asyncio.gather(
        *(_client(served, bodies, take, latencies, errors) for _ in range(clients))
    )
    return latencies, errors


def run_level(served: Served, mode: str, bodies: list[bytes], clients: int, args) -> Level:  # noqa: ANN001
    """Drive one level and read what the server formed from /metrics."""
    before, cpu, wall = served.metrics(), time.process_time(), time.perf_counter()
    latencies, errors = asyncio.run(_drive(served, bodies, clients, args.requests, args.seconds))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if errors:
        print(f"{len(errors)} errors at {clients} clients; the first: {errors[0]}", flush=True)
    after = served.metrics()
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return Level(
        mode=mode, clients=clients, requests=len(latencies), errors=len(errors), seconds=wall,
        sentences_per_second=(len(latencies) - len(errors)) / wall,
        p50_ms=1000 * quantiles[49], p99_ms=1000 * quantiles[98],
        mean_batch=delta["tmt_batch_sentences_sum"] / max(delta["tmt_batch_sentences_count"], 1),
        client_cpu=cpu / wall, server_cpu=delta["process_cpu_seconds_total"] / wall,
    )  # fmt: skip


def _print(level: Level) -> None:
    print(
        f"{level.mode:9} {level.clients:7} {level.requests:8} {level.sentences_per_second:11.1f} "
        f"{level.p50_ms:8.0f} {level.p99_ms:8.0f} {level.mean_batch:10.1f} {level.errors:6} "
        f"{100 * level.client_cpu:9.0f}% {100 * level.server_cpu:9.0f}%",
        flush=True,
    )


def soak(served: Served, bodies: list[bytes], args) -> dict:  # noqa: ANN001
    """32 clients for args.soak minutes; the server's RSS at start and end (MiB)."""
    start = served.metrics()["process_resident_memory_bytes"] / 2**20
    print(f"soak: {args.soak:g} min at 32 clients; RSS at start {start:.1f} MiB", flush=True)
    end_time, served_total, errors = time.monotonic() + 60 * args.soak, 0, 0
    while time.monotonic() < end_time:
        chunk = min(30.0, end_time - time.monotonic())
        latencies, failed = asyncio.run(_drive(served, bodies, 32, 10**9, chunk))
        served_total, errors = served_total + len(latencies), errors + len(failed)
        rss = served.metrics()["process_resident_memory_bytes"] / 2**20
        print(f"  {served_total} requests, {errors} errors, RSS {rss:.1f} MiB", flush=True)
    return {"rss_start_mib": start, "rss_end_mib": rss, "requests": served_total, "errors": errors}


def _sentences(path: Path | None, source: str, limit: int) -> list[str]:
    if path is None:
        mirror = os.environ.get("MULTI30K_DIR")
        if not mirror:
            raise SystemExit("set MULTI30K_DIR to the Multi30k mirror, or give --src FILE")
        path = Path(mirror) / f"test_2016_flickr.{source}.gz"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    return lines[:limit] if limit else lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="checkpoint, run folder or exported folder")
    parser.add_argument("--levels", default="1,8,32,128", help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=512, help="requests per level (bound)")
    parser.add_argument("--seconds", type=float, default=120, help="time per level (bound)")
    parser.add_argument("--modes", default="batched,unbatched", help="batched, unbatched or both")
    parser.add_argument("--threads", type=int, default=0, help="the server's intra-op threads")
    parser.add_argument("--src", type=Path, help="source sentences (default: test_2016_flickr)")
    parser.add_argument("--max-sentences", type=int, default=0, help="use the first N only")
    parser.add_argument("--soak", type=float, default=0, metavar="MINUTES", help="then a soak")
    parser.add_argument(
        "--server-flag", action="append", default=[], metavar="FLAG",
        help="passed to tmt-serve (repeatable), e.g. --server-flag=--max-batch-wait=10",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def run(argv: list[str] | None = None) -> int:
    """The load benchmark; returns 1 if any request failed."""
    args = _parser().parse_args(argv)
    levels = [int(n) for n in args.levels.split(",")]
    flags = ["--threads", str(args.threads), "--timeout", "300", *args.server_flag]
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        "unknown CPU",
    )
    print(f"{cpu}, {os.cpu_count()} logical CPUs; server threads {args.threads or 'default'}")
    results: dict = {"cpu": cpu, "cpus": os.cpu_count(), "levels": []}
    for mode in args.modes.split(","):
        served = Served(args.model, flags + (["--no-batching"] if mode == "unbatched" else []))
        info = json.loads(served.get("/models"))["models"][0]
        results["model"] = info
        sentences = _sentences(args.src, info["source"], args.max_sentences)
        bodies = [
            json.dumps({"q": s, "source": info["source"], "target": info["target"]}).encode()
            for s in sentences
        ]
        print(
            f"{mode}: {info['engine']}, beam {info['decode']['beam_size']}, {len(bodies)} sentences"
        )
        run_level(served, "warm-up", bodies, 4, argparse.Namespace(requests=16, seconds=60))
        print(HEADER)
        for clients in levels:
            level = run_level(served, mode, bodies, clients, args)
            _print(level)
            results["levels"].append(asdict(level))
        if args.soak and mode == "batched":
            results["soak"] = soak(served, bodies, args)
        status = served.stop()
        print(f"{mode} server stopped with exit status {status}")
    by_mode = {(lv["mode"], lv["clients"]): lv["sentences_per_second"] for lv in results["levels"]}
    for clients in levels:
        if ("batched", clients) in by_mode and ("unbatched", clients) in by_mode:
            ratio = by_mode["batched", clients] / by_mode["unbatched", clients]
            print(f"{clients:4} clients: batched / unbatched throughput = {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    errors = sum(lv["errors"] for lv in results["levels"]) + results.get("soak", {}).get(
        "errors", 0
    )
    return 1 if errors else 0
