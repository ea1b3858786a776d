"""`tmt-evaluate CHECKPOINT` (scripts/evaluate.py): decode a test set, write the hypotheses and
a report, print metrics.

CHECKPOINT may be a run folder, a .pt file, or an exported folder (decoded with CTranslate2).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from transformer.commands.arguments import check_counts, decode_config, model_parser, setup_logging
from transformer.commands.edge import guarded
from transformer.data.corpus import file_sha256
from transformer.evaluation.evaluate import (
    check_aligned,
    evaluate,
    read_recorded_split,
    split_name,
    text_lines,
    write_outputs,
)
from transformer.evaluation.metrics import format_metrics
from transformer.loading import LoadedModel, load_model
from transformer.progress import decode_progress
from transformer.run.layout import EVAL, eval_dir


def _parser() -> argparse.ArgumentParser:
    parser = model_parser(
        "tmt-evaluate", "Decode a test set with a checkpoint and report sacreBLEU and chrF."
    )
    data = parser.add_argument_group("what to decode (default: the corpus' test split)")
    data.add_argument("--split", default="test", help="test, validation, or e.g. test_2017_flickr")
    data.add_argument("--src", type=Path, help="a source file (one sentence a line), with --ref")
    data.add_argument("--ref", type=Path, help="its reference translations")
    data.add_argument("--multi30k-dir", help="Multi30k mirror folder (overrides the stored one)")
    data.add_argument("--max-sentences", type=int, default=0, help="decode only the first N")
    avg = parser.add_mutually_exclusive_group()
    avg.add_argument("--average", type=Path, nargs="+", default=[], metavar="CKPT")
    avg.add_argument(
        "--average-last",
        type=int,
        default=0,
        metavar="K",
        help="average the last K checkpoints the run of CHECKPOINT keeps",
    )
    parser.add_argument(
        "--progress-every", type=float, default=30.0, metavar="SECONDS",
        help="when standard error is not a terminal: a progress line this often",
    )  # fmt: skip
    parser.add_argument("--out-dir", type=Path, help="default: <checkpoint folder>/eval")
    return parser


def _texts(
    args: argparse.Namespace, loaded: LoadedModel
) -> tuple[list[str], list[str], str, dict[str, str]]:
    """Sources, references, the label of what is decoded, and the files read with their sha256
    (none for Multi30k or a hub corpus)."""
    if args.src is not None:
        files = {str(path.resolve()): file_sha256(path) for path in (args.src, args.ref)}
        return text_lines(args.src), text_lines(args.ref), args.src.name, files
    data_cfg = loaded.cfg.data
    if args.multi30k_dir:
        data_cfg = dataclasses.replace(data_cfg, multi30k_dir=args.multi30k_dir)
    split, files = read_recorded_split(
        data_cfg, args.split, loaded.data_sources, str(loaded.source)
    )
    sources, refs = list(split.dataset["src"]), list(split.dataset["tgt"])
    return sources, refs, split_name(data_cfg, args.split), files


def _tag(label: str, loaded: LoadedModel) -> str:
    """The report's file stem: what was decoded, with which model."""
    name = loaded.source.name if loaded.exported else loaded.source.stem
    tag = f"{label}.{name}" + (f".avg{len(loaded.averaged)}" if loaded.averaged else "")
    return tag + (f".ens{len(loaded.ensemble) + 1}" if loaded.ensemble else "")


def _evaluate(args: argparse.Namespace) -> int:
    check_counts(args, "average_last", "max_sentences")
    loaded = load_model(
        args.checkpoint,
        device=args.device,
        average=args.average,
        average_last=args.average_last,
        ensemble=args.ensemble,
    )
    decode = dataclasses.replace(decode_config(args, loaded.cfg.decode), n_best=1)
    sources, refs, label, files = _texts(args, loaded)
    names = (args.src, args.ref) if args.src is not None else (f"{label} sources", "references")
    check_aligned(sources, refs, str(names[0]), str(names[1]))  # before --max-sentences cuts
    if args.max_sentences > 0:
        sources, refs = sources[: args.max_sentences], refs[: args.max_sentences]
    with decode_progress(len(sources), label, every=args.progress_every) as progress:
        translator = loaded.translator(decode, progress=progress, threads=args.threads)
        result = evaluate(translator, sources, refs)
    tag = _tag(label, loaded)
    out_dir = args.out_dir or (loaded.source / EVAL if loaded.exported else eval_dir(loaded.source))
    info = {
        "checkpoint": str(loaded.source),
        # final.pt says which model it holds; an average made here is listed under "averaged".
        "description": None if loaded.averaged else loaded.description,
        "averaged": [str(p) for p in loaded.averaged],
        "ensemble": [str(p) for p in loaded.ensemble],  # decoded together with "checkpoint"
        "engine": f"ctranslate2 ({loaded.exported.quantization})" if loaded.exported else "ours",
        "data": label if args.src is None else {"src": str(args.src), "ref": str(args.ref)},
        "data_files": files,  # what was read: absolute path -> sha256 of its bytes
        "direction": f"{loaded.tokenizer.src_lang}-{loaded.tokenizer.tgt_lang}",
        "decode": dataclasses.asdict(decode),
        "device": str(loaded.device),
        "bleu_lowercase_note": "lowercased BLEU, as most Multi30k papers report it",
    }
    write_outputs(result, out_dir / f"{tag}.hyp.txt", out_dir / f"{tag}.json", info)
    print(
        f"{label}: {len(result.hyps)} sentences, beam {decode.beam_size}, length penalty "
        f"{decode.length_penalty}, {result.sentences_per_second:.1f} sentences/s"
    )
    print(format_metrics(result.metrics))
    print(f"hypotheses: {out_dir / f'{tag}.hyp.txt'}\nreport: {out_dir / f'{tag}.json'}")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.src is None) != (args.ref is None):
        parser.error("--src and --ref go together")
    return args


def main(argv: list[str] | None = None) -> int:
    """`tmt-evaluate CHECKPOINT [options]`; returns the exit status."""
    setup_logging(logging.INFO)
    return guarded(lambda: _evaluate(_parse(argv)))
