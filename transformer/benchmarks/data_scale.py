"""Data at scale: prepare synthetic corpora of growing size and train a few updates on each,
printing preparation time and speed, peak memory (RSS, and anonymous memory beside it) in
preparation and in training, time to the first update, training target tokens/s, and the time
to resume mid-epoch.

Every stage runs as a subprocess (`scripts/prepare_data.py`, `scripts/train.py`), exactly as a
user runs it; a poller reads /proc/<pid>/status of the process and its children (VmRSS, RssAnon)
every 0.1 s, and wait4 gives the process's own peak RSS (VmHWM). RSS counts the pages of the
memory-mapped Arrow cache a process touched; RssAnon leaves them out.

    python scripts/data_benchmark.py                          # 0.1M, 1M and 5M pairs
    python scripts/data_benchmark.py --sizes 20k,100k --work-dir /tmp/ds
    python scripts/data_benchmark.py --sizes 0.1M,5M --speed-only --rounds 3

Tokens/s of different sizes are compared by `--rounds`: short resumed sessions of each size in
turn, round after round, so that the load of a shared machine hits every size alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from transformer.benchmarks.process_usage import Usage, measure
from transformer.data.synthetic import default_source, parse_count, write_synthetic_corpus
from transformer.data.text_files import lang_path
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.layout import checkpoints_dir

UPDATE_LINE = re.compile(r"update (\d+) \|.*?([\d.]+) tok/s")
GIB = 1024**3
COLLATE_LABEL = "data path alone: target tok/s of the Arrow collate (no model)"


@dataclass
class SizeResult:
    """The figures of one corpus size."""

    pairs: int
    corpus_seconds: float
    prepare: Usage
    train: Usage
    resume: Usage
    first_update_s: float
    tokens_per_s: float
    resume_s: float

    @property
    def prepare_pairs_per_s(self) -> float:
        return self.pairs / self.prepare.seconds


def _update_times(usage: Usage) -> list[tuple[float, int, float]]:
    """(arrival seconds, update, tok/s) of each logged update line."""
    found = []
    for seconds, text in usage.lines:
        if match := UPDATE_LINE.search(text):
            found.append((seconds, int(match.group(1)), float(match.group(2))))
    if not found:
        raise RuntimeError("no 'update N | ... tok/s' line in the training output")
    return found


def _overrides(args: argparse.Namespace, folder: Path) -> list[str]:
    corpus = folder / "corpus"
    return [
        "data=text_files",
        f"data.train_path={corpus}/train",
        f"data.valid_path={corpus}/valid",
        "data.test_path=null",
        f"data.cache_dir={folder / 'cache'}",
        f"data.num_proc={args.num_proc}",
        f"data.src_lang={args.langs[0]}",
        f"data.tgt_lang={args.langs[1]}",
        f"tokenizer.vocab_size={args.vocab_size}",
        f"hydra.run.dir={folder / 'run'}",
        f"model={args.model}",
        f"train.max_tokens={args.max_tokens}",
        "train.validate_bleu=false",
        "train.evaluate_test=false",
        "train.keep_last=1",
        "train.average_last=1",
        "train.cpu_threads=1",
        "train.patience=0",
    ]


def _train_overrides(updates: int) -> list[str]:
    return [
        f"train.max_updates={updates}",
        f"train.validate_every={updates}",
        "train.log_every=1",  # a line per update: its arrival times the update
    ]


def run_size(args: argparse.Namespace, pairs: int) -> SizeResult:
    """Writes the corpus of `pairs` pairs, prepares it, trains, and resumes mid-epoch."""
    folder = Path(args.work_dir) / f"pairs-{pairs}"
    corpus = folder / "corpus"
    started = time.monotonic()
    src_lang, tgt_lang = args.langs
    sources = [lang_path(args.source, lang) for lang in args.langs]
    for split, n, seed in (("train", pairs, 0), ("valid", args.valid_pairs, 1)):
        outputs = [corpus / f"{split}.{lang}" for lang in (src_lang, tgt_lang)]
        if not all(path.is_file() for path in outputs):
            write_synthetic_corpus(*sources, *outputs, n, join=args.join, seed=seed)
    corpus_seconds = time.monotonic() - started
    python = [sys.executable]
    common = _overrides(args, folder)
    prepare = measure([*python, "scripts/prepare_data.py", *common], folder / "prepare.log")
    updates = args.updates
    train = measure(
        [*python, "scripts/train.py", *common, *_train_overrides(updates)], folder / "train.log"
    )
    logged = _update_times(train)
    speeds = [tok_s for _, step, tok_s in logged if step > 2]  # the first two warm up
    resume = measure(
        [*python, "scripts/train.py", *common, *_train_overrides(updates + 2)],
        folder / "resume.log",
    )
    first_resumed = next(s for s, step, _ in _update_times(resume) if step == updates + 1)
    return SizeResult(
        pairs=pairs,
        corpus_seconds=corpus_seconds,
        prepare=prepare,
        train=train,
        resume=resume,
        first_update_s=next(s for s, step, _ in logged if step == 1),
        tokens_per_s=statistics.median(speeds),
        resume_s=first_resumed,
    )


def _last_step(folder: Path) -> int:
    """The update of the newest periodic checkpoint in a size's run folder."""
    checkpoints = CheckpointDir(checkpoints_dir(folder / "run"))
    if not checkpoints.kept:
        raise RuntimeError(f"no checkpoint in {checkpoints.folder}; run without --speed-only")
    return checkpoints.kept[-1].step


def interleaved_speeds(args: argparse.Namespace) -> dict[int, float]:
    """Median target tokens/s per size over `args.rounds` rounds of resumed sessions of
    `args.round_updates` updates, the sizes taking turns (the first two updates of a session
    warm up and are left out)."""
    speeds: dict[int, list[float]] = {pairs: [] for pairs in args.sizes}
    common = {
        pairs: _overrides(args, Path(args.work_dir) / f"pairs-{pairs}") for pairs in args.sizes
    }
    for round_index in range(args.rounds):
        for pairs in args.sizes:
            folder = Path(args.work_dir) / f"pairs-{pairs}"
            start = _last_step(folder)
            usage = measure(
                [sys.executable, "scripts/train.py", *common[pairs],
                 *_train_overrides(start + args.round_updates)],
                folder / f"round-{round_index}.log",
            )  # fmt: skip
            speeds[pairs] += [tok_s for _, step, tok_s in _update_times(usage) if step > start + 2]
    return {pairs: statistics.median(values) for pairs, values in speeds.items()}


def collate_speeds(args: argparse.Namespace) -> dict[int, float]:
    """Target tokens/s of the data path alone (collating the sampler's batches out of Arrow, no
    model) per size, in this process: `args.collate_batches` batches from a random point of
    epoch 0 of each size in turn, for `args.rounds` rounds (at least 3); the median round per
    size."""
    import datasets
    import numpy as np

    from transformer.data.batching import EncodedPairs
    from transformer.data.prepare import pair_lengths
    from transformer.data.sampler import TokenBatchSampler

    streams = {}
    for pairs in args.sizes:
        (path,) = (Path(args.work_dir) / f"pairs-{pairs}" / "cache" / "encoded").glob(
            "train-*.arrow"
        )
        dataset = datasets.Dataset.from_file(str(path))
        encoded = EncodedPairs.from_dataset(dataset, pair_lengths(dataset))
        sampler = TokenBatchSampler(*encoded.collated_lengths(), args.max_tokens, seed=0)
        batches = sampler.epoch_batches(0)
        streams[pairs] = (encoded, batches)
    rng = np.random.default_rng(0)
    rates: dict[int, list[float]] = {pairs: [] for pairs in args.sizes}
    for _ in range(max(args.rounds, 3)):
        for pairs, (encoded, batches) in streams.items():
            start = int(rng.integers(0, max(len(batches) - args.collate_batches, 1)))
            started, tokens = time.perf_counter(), 0
            for indices in batches[start : start + args.collate_batches]:
                tokens += encoded.collate(indices).n_tgt_tokens
            rates[pairs].append(tokens / (time.perf_counter() - started))
    return {pairs: statistics.median(values) for pairs, values in rates.items()}


def format_speeds(
    speeds: dict[int, float], label: str = "target tok/s (interleaved rounds)"
) -> str:
    """Tokens/s per size and each size's ratio to the smallest, as a Markdown table."""
    smallest = speeds[min(speeds)]
    lines = [f"| pairs | {label} | ratio to the smallest |", "|---|---|---|"]
    lines += [f"| {p:,} | {v:,.0f} | {v / smallest:.3f} |" for p, v in sorted(speeds.items())]
    return "\n".join(lines)


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def format_results(results: list[SizeResult]) -> str:
    """The figures as a Markdown table, one row per size, then the growth between sizes."""
    header = (
        "| pairs | prepare s | pairs/s | prepare peak RSS / RssAnon GiB | train peak RSS / "
        "RssAnon GiB | first update s | target tok/s | resume s |"
    )
    lines = [header, "|" + "---|" * 8]
    for r in results:
        lines.append(
            f"| {r.pairs:,} | {r.prepare.seconds:.1f} | {r.prepare_pairs_per_s:,.0f} | "
            f"{_gib(r.prepare.peak_rss)} / {_gib(r.prepare.peak_anon)} | "
            f"{_gib(r.train.peak_rss)} / {_gib(r.train.peak_anon)} | {r.first_update_s:.1f} | "
            f"{r.tokens_per_s:,.0f} | {r.resume_s:.1f} |"
        )
    for small, large in zip(results, results[1:], strict=False):
        millions = (large.pairs - small.pairs) / 1e6
        growth = (large.train.peak_rss - small.train.peak_rss) / GIB / millions
        anon = (large.train.peak_anon - small.train.peak_anon) / GIB / millions
        ratio = large.tokens_per_s / small.tokens_per_s
        lines.append(
            f"{small.pairs:,} -> {large.pairs:,} pairs: training peak RSS grows "
            f"{growth:+.3f} GiB per million pairs (RssAnon {anon:+.3f}); tokens/s ratio "
            f"{ratio:.3f}"
        )
    if results and len(results) > 1:
        ratio = results[-1].tokens_per_s / results[0].tokens_per_s
        lines.append(f"tokens/s, largest / smallest corpus: {ratio:.3f}")
    lines.append(
        "(first update: from starting tmt-train to the log line of update 1; resume: from "
        "restarting tmt-train to the line of the first resumed update; tok/s: median over the "
        "updates after the first two, each update's target tokens over its time)"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [parse_count(part) for part in text.split(",")],
        default=[100_000, 1_000_000, 5_000_000],
        help="comma-separated corpus sizes (default 0.1M,1M,5M)",
    )
    parser.add_argument("--work-dir", default="data/benchmarks/data_scale")
    parser.add_argument(
        "--source", default=default_source(), help='small corpus, a path with "{lang}"'
    )
    parser.add_argument("--langs", nargs=2, default=["en", "de"], metavar=("SRC", "TGT"))
    parser.add_argument("--join", type=int, default=2, help="source pairs per synthetic pair")
    parser.add_argument("--valid-pairs", type=parse_count, default=1000)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--model", default="tiny", help="configs/model/<name>.yaml")
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--updates", type=int, default=40, help="updates in the training run")
    parser.add_argument("--num-proc", type=int, default=1, help="data.num_proc")
    parser.add_argument(
        "--rounds", type=int, default=0, help="interleaved rounds comparing tokens/s (default 0)"
    )
    parser.add_argument("--round-updates", type=int, default=20, help="updates per round session")
    parser.add_argument(
        "--collate-batches",
        type=int,
        default=200,
        help="batches per round when timing the data path alone (0: skip; default 200)",
    )
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only the speed comparisons, in folders an earlier run of the sizes left",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not args.source:
        parser.error("--source is needed when MULTI30K_DIR is not set")
    if args.updates < 4:
        parser.error("--updates must be at least 4")
    return args


def run(argv: Sequence[str] | None = None) -> None:
    """Runs every size in turn and prints the figures."""
    args = parse_args(argv)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print("command: " + " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), flush=True)
    if args.speed_only:
        if args.rounds:
            print(format_speeds(interleaved_speeds(args)), flush=True)
        if args.collate_batches:
            print(format_speeds(collate_speeds(args), COLLATE_LABEL), flush=True)
        return
    results = []
    for pairs in args.sizes:
        result = run_size(args, pairs)
        results.append(result)
        print(
            f"{pairs:,} pairs: prepared in {result.prepare.seconds:.1f} s, "
            f"trained {args.updates} updates, resumed in {result.resume_s:.1f} s",
            flush=True,
        )
    print(format_results(results), flush=True)
    speeds = interleaved_speeds(args) if args.rounds else {}
    if speeds:
        print(format_speeds(speeds), flush=True)
    collated = collate_speeds(args) if args.collate_batches else {}
    if collated:
        print(format_speeds(collated, COLLATE_LABEL), flush=True)
    if args.json:
        figures = [
            {
                **{k: v for k, v in asdict(r).items() if k not in ("prepare", "train", "resume")},
                **{
                    f"{stage}_{key}": getattr(getattr(r, stage), key)
                    for stage in ("prepare", "train", "resume")
                    for key in ("seconds", "peak_rss", "peak_anon")
                },
                "prepare_pairs_per_s": r.prepare_pairs_per_s,
            }
            for r in results
        ]
        for entry in figures:
            entry["interleaved_tokens_per_s"] = speeds.get(entry["pairs"])
            entry["collate_tokens_per_s"] = collated.get(entry["pairs"])
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "sizes": figures}, indent=2))
