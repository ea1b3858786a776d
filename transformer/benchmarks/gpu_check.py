"""The GPU check: one command that proves the CUDA path, its speed and its time to BLEU.

Parts, in order, each with its own time budget; everything lands under --out:
  tests       `pytest -m gpu` (log: pytest.log)
  peak        the dense matmul rate MFU is measured against (8192^3 bf16 on CUDA)
  throughput  training target tokens/s and MFU of model=small/base/big, eager and compiled,
              fp32 and bf16, on synthetic batches, with the graphs torch.compile built
  train       the default recipe (Multi30k en->de) under a wall-time limit: validation BLEU
              against wall time, then test BLEU (cased and lowercased) of final.pt
  decode      test_2016_flickr with beam 5 through the Translator: sentences/s
report.txt holds what was printed, results.json the figures, train.log the trainer's log.
--cpu runs every part but the tests at tiny sizes on the CPU (the test suite runs it).

    python -m transformer.benchmarks.gpu_check --out OUT [--cpu] [--parts peak,train]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch

from transformer.run.layout import FINAL, checkpoints_dir, tensorboard_dir

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("tests", "peak", "throughput", "train", "decode")
REFERENCE_PEAK = 790e12  # bf16 8192^3 matmul on this workplace's H200s (KINDS.md, 2026-10-28)
PACKAGES = ("torch", "triton", "datasets", "pyarrow", "fsspec", "huggingface-hub", "hydra-core")
PACKAGES += ("sentencepiece", "sacrebleu", "tensorboard")


class Report:
    """Prints lines and keeps them (report.txt) with the figures (results.json) under `out`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.results: dict[str, object] = {}
        self._text = (out / "report.txt").open("w", encoding="utf-8")

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        self._text.write(text + "\n")
        self._text.flush()

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2) + "\n")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def describe_machine(report: Report, device: torch.device) -> None:
    """Device, driver and package versions: the figures below mean nothing without them."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = (
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
        )
        name += f", CUDA {torch.version.cuda}, capability {props.major}.{props.minor}"
    else:
        from transformer.runtime import cpu_name

        name = f"{cpu_name()}, {torch.get_num_threads()} threads (CPU mode: tiny sizes)"
    report.line(f"device: {name}")
    report.line(f"python {platform.python_version()}; " + ", ".join(
        f"{package} {_version(package)}" for package in PACKAGES
    ))  # fmt: skip
    report.results["device"] = name


def part_tests(args: argparse.Namespace, report: Report, device: torch.device) -> None:
    """`pytest -m gpu` in a child process; a module that fails to import does not stop the rest."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider"]
    command += ["--continue-on-collection-errors", "tests"]
    log = args.out / "pytest.log"
    with log.open("w") as stream:
        try:
            done = subprocess.run(
                command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT,
                timeout=args.tests_budget, check=False,
            )  # fmt: skip
            status = f"exit {done.returncode}"
        except subprocess.TimeoutExpired:
            status = f"stopped after its budget of {args.tests_budget:.0f} s"
    summary = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
    report.line(f"pytest -m gpu: {status}: {summary[0]} (log: pytest.log)")
    report.results["tests"] = {"status": status, "summary": summary[0]}


def part_peak(args: argparse.Namespace, report: Report, device: torch.device) -> None:
    from transformer.benchmarks.throughput import matmul_rate

    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (512, torch.float32)
    args.peak = matmul_rate(device, n, dtype)
    report.line(
        f"matmul peak: {args.peak / 1e12:.4g} TFLOP/s ({n}^3 {str(dtype).removeprefix('torch.')}"
        f"; this workplace's H200 reference: ~{REFERENCE_PEAK / 1e12:.0f} TFLOP/s bf16)"
    )
    report.results["peak_tflops"] = args.peak / 1e12


def _throughput_plan(args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    # Most wanted first (the bf16 compiled MFU of the two largest), so a spent budget skips the
    # least; compiling costs tens of seconds per setting on a GPU, running one a few seconds.
    first = [(model, "bf16", True) for model in args.models[:2]]
    plan = [*first, *((model, "bf16", False) for model in args.models)]
    plan += [(model, "fp32", False) for model in args.models]
    plan += [(model, "bf16", True) for model in args.models[2:]]
    return plan + [(model, "fp32", True) for model in args.models]


def part_throughput(args: argparse.Namespace, report: Report, device: torch.device) -> None:
    from transformer.benchmarks.throughput import SHAPES, synthetic_batches, time_training
    from transformer.commands.hydra_config import compose_run_config

    if device.type == "cuda":  # as the trainer does: fp32 matmuls on TF32 tensor cores
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak = getattr(args, "peak", None)
    report.line(
        f"training throughput: vocab {args.vocab}, {args.max_tokens} tokens per batch, "
        f"{len(SHAPES)} batch shapes, {args.steps} timed updates; MFU against the peak above"
    )
    report.line(
        f"  {'model':6s} {'precision':9s} {'mode':8s} {'tgt tok/s':>11s} {'TFLOP/s':>8s} "
        f"{'MFU':>6s} {'warm-up s':>9s} {'graphs':>6s}"
    )
    rows, start = [], time.monotonic()
    batches = synthetic_batches(args.vocab, args.max_tokens, SHAPES, device)
    for name, precision, compiled in _throughput_plan(args):
        mode = "compiled" if compiled else "eager"
        left = args.throughput_budget - (time.monotonic() - start)
        if left < (args.compile_reserve if compiled else 0):
            report.line(f"  {name:6s} {precision:9s} {mode:8s} skip ({left:.0f} s of budget left)")
            continue
        try:
            result = time_training(
                compose_run_config([f"model={name}"], str(args.work)).model,
                vocab=args.vocab, batches=batches, device=device, precision=precision,
                compiled=compiled, steps=args.steps, compile_backend=args.compile_backend,
            )  # fmt: skip
        except Exception as error:  # one setting's failure (memory, compiler) spares the rest
            first_line = (str(error).strip().splitlines() or [""])[0]
            report.line(f"  {name:6s} {precision:9s} {mode:8s} FAILED: {type(error).__name__}: "
                        f"{first_line}")  # fmt: skip
            rows.append({"model": name, "precision": precision, "mode": mode, "error": str(error)})
            continue
        mfu = result.flops_per_s / peak if peak else float("nan")
        report.line(
            f"  {name:6s} {precision:9s} {mode:8s} {result.tokens_per_s:11,.0f} "
            f"{result.flops_per_s / 1e12:8.4g} {mfu:6.1%} {result.warmup_s:9.1f} "
            f"{result.graphs:6d}"
        )
        rows.append({"model": name, "precision": precision, "mode": mode, "mfu": mfu}
                    | vars(result))  # fmt: skip
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report.results["throughput"] = rows


def _train_overrides(args: argparse.Namespace, device: torch.device) -> list[str]:
    overrides = [
        f"data.multi30k_dir={args.multi30k_dir}",
        f"data.cache_dir={args.work / 'data'}",
        f"train.max_time_minutes={args.train_minutes}",
        f"train.device={device.type}",
    ]
    if device.type == "cpu":  # a few updates of a tiny model, validated on a few sentences
        overrides += [
            "experiment=smoke", "train.max_train_pairs=300", "train.max_updates=6",
            "train.validate_every=3", "train.valid_max_sentences=8", "train.evaluate_test=false",
            "tokenizer.vocab_size=300", "tokenizer.input_sentence_size=2000",
        ]  # fmt: skip
    return overrides + args.train_override


def _validation_curve(run_dir: Path, t0: float) -> list[dict[str, float]]:
    from transformer.training.logger import read_scalars

    return [
        {"update": step, "seconds": wall_time - t0, "bleu": value}
        for wall_time, step, value in read_scalars(tensorboard_dir(run_dir), "valid/bleu")
    ]


def part_train(args: argparse.Namespace, report: Report, device: torch.device) -> None:
    from transformer.commands.hydra_config import compose_run_config
    from transformer.data.prepare import prepare_data
    from transformer.training.compiling import graphs_compiled
    from transformer.training.trainer import train

    cfg = compose_run_config(_train_overrides(args, device), str(args.work / "run"))
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    start = time.time()
    prepare_data(cfg)  # tokenizer and encoded caches, outside the training time
    report.line(f"recipe: data prepared in {time.time() - start:.1f} s; training for at most "
                f"{args.train_minutes} min of wall time")  # fmt: skip
    torch._dynamo.reset()
    graphs = graphs_compiled()
    t0 = time.time()
    metrics = train(cfg)
    total = time.time() - t0
    curve = _validation_curve(Path(cfg.run_dir), t0)
    report.line("  validation BLEU (cased) against wall time since training started:")
    for point in curve:
        report.line(
            f"    {point['seconds']:7.1f} s  update {point['update']:6d}  {point['bleu']:6.2f}"
        )
    test = {key: metrics.get(key) for key in ("test_bleu", "test_bleu_lowercase", "test_chrf")}
    report.line(
        f"  stopped at update {metrics['step']} ({metrics['stop_reason']}); {total:.1f} s in all "
        f"with the final validation and test decoding; graphs compiled: "
        f"{graphs_compiled() - graphs}"
    )
    if test["test_bleu"] is None:
        report.line("  test: not decoded (train.evaluate_test=false)")
    else:
        report.line(
            f"  test ({cfg.data.test_split}, final.pt): BLEU {test['test_bleu']:.2f}, lowercased "
            f"{test['test_bleu_lowercase']:.2f}, chrF {test['test_chrf']:.2f}"
        )
    report.results["train"] = {
        "curve": curve, "seconds": total, "graphs": graphs_compiled() - graphs,
        **{k: v for k, v in metrics.items() if isinstance(v, int | float | str)},
    }  # fmt: skip


def part_decode(args: argparse.Namespace, report: Report, device: torch.device) -> None:
    from transformer.checkpoint import load_for_inference
    from transformer.config import DecodeConfig
    from transformer.data.corpus import load_split
    from transformer.decoding.translator import Translator
    from transformer.evaluation.metrics import compute_metrics

    checkpoint = args.checkpoint or checkpoints_dir(args.work / "run") / FINAL
    model, tokenizer, cfg = load_for_inference(checkpoint, device)
    test = load_split(cfg.data, cfg.data.test_split)
    sentences = list(test["src"])[: args.decode_sentences or None]
    refs = list(test["tgt"])[: len(sentences)]
    rows = []
    for max_tokens in args.decode_max_tokens:
        decode = DecodeConfig(
            beam_size=5, length_penalty=cfg.decode.length_penalty,
            max_len_a=cfg.decode.max_len_a, max_len_b=cfg.decode.max_len_b, max_tokens=max_tokens,
        )  # fmt: skip
        translator = Translator(model, tokenizer, decode, device)
        translator.translate(sentences[:32])  # warm-up
        start = time.perf_counter()
        hyps = translator.translate(sentences)  # strings: the device is done when they exist
        seconds = time.perf_counter() - start
        bleu = compute_metrics(hyps, refs)
        report.line(
            f"decode {cfg.data.test_split} ({len(sentences)} sentences), beam 5, "
            f"decode.max_tokens={max_tokens}: {len(sentences) / seconds:.1f} sentences/s "
            f"({seconds:.2f} s); BLEU {bleu.bleu:.2f}, lowercased {bleu.bleu_lowercase:.2f}"
        )
        rows.append({"max_tokens": max_tokens, "sentences_per_s": len(sentences) / seconds,
                     "bleu": bleu.bleu, "bleu_lowercase": bleu.bleu_lowercase})  # fmt: skip
    report.results["decode"] = rows


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="every file goes under it")
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (no tests)")
    parser.add_argument("--parts", help=f"comma-separated, from {', '.join(PARTS)} (default: all)")
    parser.add_argument(
        "--multi30k-dir", type=Path,
        default=Path(os.environ.get("MULTI30K_DIR") or ROOT / ".gpu-data" / "multi30k"),
    )  # fmt: skip
    parser.add_argument("--tests-budget", type=float, default=60.0, help="seconds")
    parser.add_argument("--throughput-budget", type=float, default=70.0, help="seconds")
    parser.add_argument(
        "--compile-reserve", type=float, default=30.0,
        help="seconds of throughput budget a compiled setting needs left to start",
    )  # fmt: skip
    parser.add_argument("--train-minutes", type=float, default=2.0, help="train.max_time_minutes")
    parser.add_argument("--train-override", action="append", default=[], help="key=value")
    parser.add_argument("--models", default="big,base,small", help="model presets to time")
    parser.add_argument("--vocab", type=int, default=32000, help="synthetic vocabulary")
    parser.add_argument("--max-tokens", type=int, default=16384, help="tokens per batch")
    parser.add_argument("--steps", type=int, default=12, help="timed updates per setting")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--checkpoint", type=Path, help="decode this instead of the train part's")
    parser.add_argument("--decode-sentences", type=int, default=0, help="0: the whole split")
    parser.add_argument("--decode-max-tokens", default="8192,32768", help="decode.max_tokens")
    parser.add_argument("--keep-work", action="store_true", help="keep OUT/work (checkpoints)")
    args = parser.parse_args(argv)
    if args.parts is None:
        args.parts = ",".join(part for part in PARTS if not (args.cpu and part == "tests"))
    if args.cpu:  # seconds on one thread: tiny model, few tokens, tracing without code generation
        args.models, args.vocab, args.max_tokens, args.steps = "tiny", 64, 128, 2
        args.compile_reserve = 0.0
        args.compile_backend, args.decode_sentences = "eager", args.decode_sentences or 12
        args.decode_max_tokens = "1024"
    args.parts = [part for part in args.parts.split(",") if part]
    args.models = args.models.split(",")
    args.decode_max_tokens = [int(value) for value in args.decode_max_tokens.split(",")]
    args.work = args.out / "work"
    return args


def run(argv: list[str] | None = None) -> int:
    """Run the parts; return 0 when every part ran, 1 when one failed (the others still run)."""
    args = parse_args(argv)
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        print(f"--parts: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here (torch.cuda.is_available() is False); use --cpu for a dry run")
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    log_handler = _log_to(args.out / "train.log")
    report = Report(args.out)
    describe_machine(report, device)
    functions: dict[str, Callable] = {
        "tests": part_tests, "peak": part_peak, "throughput": part_throughput,
        "train": part_train, "decode": part_decode,
    }  # fmt: skip
    failed = []
    for part in args.parts:
        start = time.monotonic()
        report.line(f"\n== {part}")
        try:
            functions[part](args, report, device)
        except Exception as error:  # one part's failure must not cost the other parts' figures
            failed.append(part)
            report.line(f"FAILED: {type(error).__name__}: {error}")
            logging.getLogger(__name__).error("part %s failed:\n%s", part, traceback.format_exc())
        report.line(f"({part}: {time.monotonic() - start:.1f} s)")
        report.results.setdefault("seconds", {})[part] = time.monotonic() - start
        report.save()
    logging.getLogger().removeHandler(log_handler)
    log_handler.close()
    if not args.keep_work:
        shutil.rmtree(args.work, ignore_errors=True)
    report.line(f"\nparts failed: {', '.join(failed)}" if failed else "\nevery part ran")
    return 1 if failed else 0
