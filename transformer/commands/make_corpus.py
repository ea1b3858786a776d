"""`python scripts/make_corpus.py --pairs N --out PATH`: a synthetic parallel corpus of N pairs
from a small real one (`transformer.data.synthetic`), for tests and benchmarks at scale."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from transformer.commands.edge import guarded
from transformer.data.synthetic import default_source, parse_count, write_synthetic_corpus
from transformer.data.text_files import lang_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="A synthetic parallel corpus of any size from a small real one."
    )
    parser.add_argument("--pairs", type=parse_count, required=True, help="e.g. 5000, 50k, 1M")
    parser.add_argument(
        "--out", required=True, help='output path with "{lang}" (or a prefix); .gz to gzip'
    )
    parser.add_argument(
        "--source",
        default=default_source(),
        help='the small corpus, a path with "{lang}" (default: $MULTI30K_DIR/train.{lang}.gz)',
    )
    parser.add_argument("--langs", nargs=2, default=["en", "de"], metavar=("SRC", "TGT"))
    parser.add_argument("--join", type=int, default=2, help="source pairs per pair (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _make(args: argparse.Namespace) -> int:
    started = time.monotonic()
    src_lang, tgt_lang = args.langs
    outputs = [lang_path(args.out, lang) for lang in args.langs]
    write_synthetic_corpus(
        lang_path(args.source, src_lang),
        lang_path(args.source, tgt_lang),
        *outputs,
        args.pairs,
        join=args.join,
        seed=args.seed,
    )
    elapsed = time.monotonic() - started
    print(f"wrote {args.pairs:,} pairs to {outputs[0]} + {outputs[1]} in {elapsed:.1f} s")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.source:
        parser.error("--source is needed when MULTI30K_DIR is not set")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """`scripts/make_corpus.py --pairs N --out PATH [options]`; returns the exit status."""
    return guarded(lambda: _make(_parse(argv)))
