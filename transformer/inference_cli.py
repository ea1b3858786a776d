"""Command lines of `scripts/evaluate.py` and `scripts/translate.py` (argparse, not Hydra).

Both take a checkpoint as their first argument and rebuild the model, vocabulary and run config
from it alone; decoding options default to the checkpoint's stored decode config and are
overridden by flags. User errors (a missing or corrupt checkpoint, a file that is not UTF-8, an
unknown split) end with a one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from transformer.checkpoint import (
    CheckpointError,
    average_checkpoints,
    load_checkpoint,
    load_for_inference,
    model_from_state,
)
from transformer.config import DEVICES, DecodeConfig, TrainRunConfig
from transformer.data.corpus import CorpusError
from transformer.data.tokenizer import Tokenizer
from transformer.decoding.ensemble import Ensemble
from transformer.decoding.translator import Translator
from transformer.evaluation.attention_plot import plot_attention
from transformer.evaluation.evaluate import (
    check_aligned,
    evaluate,
    split_name,
    split_texts,
    text_lines,
    write_outputs,
)
from transformer.evaluation.metrics import format_metrics
from transformer.model import Seq2SeqTransformer
from transformer.runtime import pick_device
from transformer.training.checkpoint_lookup import averaging_candidates, resolve_checkpoint

logger = logging.getLogger(__name__)

USER_ERRORS = (CheckpointError, CorpusError, OSError, ValueError)
_DECODE_FLAGS = ("beam_size", "length_penalty", "max_len_a", "max_len_b", "max_tokens", "n_best")
_FLAG_NAMES = re.compile(r"\b(?:decode\.)?(" + "|".join(_DECODE_FLAGS) + r")\b")


def _common_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="a .pt checkpoint written by training, or a run folder: its final.pt, else best.pt, "
        "else last.pt",
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA if present")
    parser.add_argument(
        "--ensemble",
        type=Path,
        action="append",
        default=[],
        metavar="CKPT",
        help="decode with this model too (repeatable), averaging the models' next-token "
        "probabilities; same vocabulary and direction as CHECKPOINT, sizes may differ",
    )
    group = parser.add_argument_group("search (defaults: the checkpoint's decode config)")
    group.add_argument("--beam-size", type=int, help="1 is greedy search")
    group.add_argument("--length-penalty", type=float, help="GNMT alpha; 0 disables")
    group.add_argument("--max-len-a", type=float, help="output length limit a * |src| + b")
    group.add_argument("--max-len-b", type=int, help="the b of a * |src| + b")
    group.add_argument("--max-tokens", type=int, help="batch budget: source tokens x beam")
    return parser


def decode_config(args: argparse.Namespace, stored: DecodeConfig) -> DecodeConfig:
    """The stored decode config with the flags that were given (validated again)."""
    given = {k: getattr(args, k) for k in _DECODE_FLAGS if getattr(args, k, None) is not None}
    if "beam_size" in given and "n_best" not in given:
        given["n_best"] = min(stored.n_best, given["beam_size"])
    try:
        return dataclasses.replace(stored, **given)
    except ValueError as error:  # DecodeConfig names its keys (decode.n_best); users typed flags
        message = _FLAG_NAMES.sub(lambda m: "--" + m[1].replace("_", "-"), str(error))
        raise ValueError(message) from None


class Loaded(NamedTuple):
    """What `load_model` rebuilt from the command line's checkpoints."""

    model: Seq2SeqTransformer | Ensemble
    tokenizer: Tokenizer
    cfg: TrainRunConfig
    device: torch.device
    averaged: list[Path]  # the files averaged into the model; [] for CHECKPOINT as it is
    description: str | None  # CHECKPOINT's own account of its weights (final.pt has one)


def load_model(args: argparse.Namespace) -> Loaded:
    """Model (averaged or an ensemble when asked), tokenizer, run config and device.

    The tokenizer, run config and decode settings are CHECKPOINT's; --ensemble members must have
    the same tokenizer (vocabulary and direction).
    """
    device = pick_device(args.device)
    if args.ensemble and (getattr(args, "average", None) or getattr(args, "average_last", 0)):
        raise ValueError("--ensemble does not combine with --average or --average-last.")
    averaged = checkpoints_to_average(args)
    state = load_checkpoint(args.checkpoint)
    description = state.get("description")
    try:
        model, tokenizer, cfg = model_from_state(state, args.checkpoint, device)
        del state  # its weights are in the model now
        if averaged:
            model.load_state_dict(average_checkpoints(averaged))
            logger.info("averaged %s", ", ".join(map(str, averaged)))
    except RuntimeError as error:  # load_state_dict: weights that do not fit the config
        raise CheckpointError(
            f"{args.checkpoint}: weights do not fit its model config: {error}"
        ) from error
    if not args.ensemble:
        return Loaded(model, tokenizer, cfg, device, averaged, description)
    members = [model]
    for path in args.ensemble:
        member, member_tokenizer, _ = load_for_inference(path, device)
        if member_tokenizer.state_dict() != tokenizer.state_dict():
            raise CheckpointError(
                f"{path}: its vocabulary or direction ({member_tokenizer.src_lang}-"
                f"{member_tokenizer.tgt_lang}) differs from {args.checkpoint}'s "
                f"({tokenizer.src_lang}-{tokenizer.tgt_lang}); ensemble members need the same "
                "tokenizer."
            )
        members.append(member)
    logger.info("ensemble of %d models: %s", len(members), ", ".join(map(str, args.ensemble)))
    return Loaded(Ensemble(members), tokenizer, cfg, device, averaged, description)


def checkpoints_to_average(args: argparse.Namespace) -> list[Path]:
    """[] for no averaging; CHECKPOINT and the --average files; or the --average-last K.

    --average-last takes the K newest checkpoints its folder's manifest keeps (the trainer's
    periodic checkpoints); CHECKPOINT then only supplies the config and vocabulary.
    """
    if getattr(args, "average", None):
        return [args.checkpoint, *args.average]
    k = getattr(args, "average_last", 0)
    return averaging_candidates(args.checkpoint.parent, k) if k else []


def _guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command, turning user errors into a message and exit status 2."""
    try:
        args.checkpoint = resolve_checkpoint(args.checkpoint)
        args.ensemble = [resolve_checkpoint(path) for path in args.ensemble]
        return run(args)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _setup_logging(level: int) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


# ----------------------------------------------------------------------------- evaluate


def _evaluate_parser() -> argparse.ArgumentParser:
    parser = _common_parser("Decode a test set with a checkpoint and report sacreBLEU and chrF.")
    data = parser.add_argument_group("what to decode (default: the corpus' test split)")
    data.add_argument("--split", default="test", help="test, validation, or e.g. test_2017_flickr")
    data.add_argument("--src", type=Path, help="a source file (one sentence a line), with --ref")
    data.add_argument("--ref", type=Path, help="its reference translations")
    data.add_argument("--multi30k-dir", help="Multi30k mirror folder (overrides the stored one)")
    data.add_argument("--max-sentences", type=int, default=0, help="decode only the first N")
    avg = parser.add_mutually_exclusive_group()
    avg.add_argument("--average", type=Path, nargs="+", metavar="CKPT", help="average with these")
    avg.add_argument(
        "--average-last",
        type=int,
        default=0,
        metavar="K",
        help="average the last K checkpoints the manifest of the checkpoint's folder keeps",
    )
    parser.add_argument("--out-dir", type=Path, help="default: <checkpoint folder>/eval")
    return parser


def evaluate_main(argv: list[str] | None = None) -> int:
    """`scripts/evaluate.py CHECKPOINT [options]`; returns the exit status."""
    args = _evaluate_parser().parse_args(argv)
    if (args.src is None) != (args.ref is None):
        _evaluate_parser().error("--src and --ref go together")
    _setup_logging(logging.INFO)
    return _guarded(_evaluate, args)


def _evaluate(args: argparse.Namespace) -> int:
    model, tokenizer, cfg, device, averaged, description = load_model(args)
    decode = dataclasses.replace(decode_config(args, cfg.decode), n_best=1)
    if args.src is not None:
        sources, refs, label = text_lines(args.src), text_lines(args.ref), args.src.name
    else:
        data_cfg = cfg.data
        if args.multi30k_dir:
            data_cfg = dataclasses.replace(data_cfg, multi30k_dir=args.multi30k_dir)
        (sources, refs), label = split_texts(data_cfg, args.split), split_name(data_cfg, args.split)
    names = (args.src, args.ref) if args.src is not None else (f"{label} sources", "references")
    check_aligned(sources, refs, str(names[0]), str(names[1]))  # before --max-sentences cuts
    if args.max_sentences > 0:
        sources, refs = sources[: args.max_sentences], refs[: args.max_sentences]
    result = evaluate(Translator(model, tokenizer, decode, device), sources, refs)
    tag = f"{label}.{args.checkpoint.stem}" + (f".avg{len(averaged)}" if averaged else "")
    tag += f".ens{len(args.ensemble) + 1}" if args.ensemble else ""
    out_dir = args.out_dir or args.checkpoint.parent / "eval"
    info = {
        "checkpoint": str(args.checkpoint),
        # final.pt says which model it holds; an average made here is listed under "averaged".
        "description": None if averaged else description,
        "averaged": [str(p) for p in averaged],
        "ensemble": [str(p) for p in args.ensemble],  # decoded together with "checkpoint"
        "data": label if args.src is None else {"src": str(args.src), "ref": str(args.ref)},
        "direction": f"{tokenizer.src_lang}-{tokenizer.tgt_lang}",
        "decode": dataclasses.asdict(decode),
        "device": str(device),
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


# ---------------------------------------------------------------------------- translate


def _translate_parser() -> argparse.ArgumentParser:
    parser = _common_parser(
        "Translate sentences given as arguments, in a file (--input), or on standard input "
        "(one output line per input line)."
    )
    parser.add_argument("sentences", nargs="*", metavar="SENTENCE")
    parser.add_argument("--input", type=Path, help="a UTF-8 file, one sentence a line")
    parser.add_argument(
        "--n-best", type=int, help="print N hypotheses per input as INDEX<TAB>SCORE<TAB>TEXT"
    )
    parser.add_argument(
        "--attention", type=Path, metavar="FILE.png", help="plot the first sentence's attention"
    )
    parser.add_argument("--layer", type=int, default=-1, help="decoder layer to plot (-1: last)")
    return parser


def translate_main(argv: list[str] | None = None) -> int:
    """`scripts/translate.py CHECKPOINT [SENTENCE ...]`; returns the exit status."""
    args = _translate_parser().parse_intermixed_args(argv)  # sentences may follow options
    if args.sentences and args.input:
        _translate_parser().error("give sentences as arguments or --input FILE, not both")
    _setup_logging(logging.WARNING)
    return _guarded(_translate, args)


def _translate(args: argparse.Namespace) -> int:
    model, tokenizer, cfg, device, _, _ = load_model(args)
    if isinstance(model, Ensemble):
        if args.attention:
            raise ValueError("--attention plots one model's attention; drop --ensemble.")
    elif not -model.n_decoder_layers <= args.layer < model.n_decoder_layers:
        raise ValueError(f"--layer {args.layer}: the model has {model.n_decoder_layers} layers.")
    translator = Translator(model, tokenizer, decode_config(args, cfg.decode), device)
    if args.sentences or args.input:
        chunks: Iterator[list[str]] = iter([args.sentences or text_lines(args.input)])
    else:
        chunks = stdin_lines()
    first: str | None = None  # the sentence whose attention --attention plots
    done = 0
    for lines in chunks:
        _write(translator, lines, done, nbest=args.n_best is not None)
        if first is None and lines:
            first = lines[0]
        done += len(lines)
    if args.attention:
        _plot(translator, first, args)
    return 0


def stdin_lines(fd: int | None = None) -> Iterator[list[str]]:
    """Complete lines of standard input, in the groups they arrive in.

    Each read returns what is available: a typed line alone (interactive use answers at once) or
    a pipe's buffer of many lines (translated as one batch, in order).

    Raises:
        ValueError: the input is not UTF-8 (naming the line).
    """
    fd = sys.stdin.fileno() if fd is None else fd
    pending, n_read = b"", 0
    while data := os.read(fd, 1 << 16):
        *complete, pending = (pending + data).split(b"\n")
        if complete:
            yield [_utf8_line(line, n_read + i + 1) for i, line in enumerate(complete)]
            n_read += len(complete)
    if pending:
        yield [_utf8_line(pending, n_read + 1)]


def _utf8_line(raw: bytes, number: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as error:
        raise ValueError(f"standard input line {number} is not UTF-8 ({error.reason}).") from None


def _write(translator: Translator, lines: list[str], first_index: int, nbest: bool) -> None:
    """Translate a group of lines and print the results, flushed."""
    if nbest:
        for i, hyps in enumerate(translator.translate_nbest(lines)):
            for text, score in hyps:
                sys.stdout.write(f"{first_index + i}\t{score:.4f}\t{text}\n")
    else:
        sys.stdout.write("".join(text + "\n" for text in translator.translate(lines)))
    sys.stdout.flush()


def _plot(translator: Translator, sentence: str | None, args: argparse.Namespace) -> None:
    if not sentence or not sentence.strip():
        logger.warning("no non-empty first sentence: --attention plot skipped")
        return
    attention = translator.attention(sentence, layer=args.layer)
    layer = args.layer % translator.model.n_decoder_layers + 1
    title = f"cross-attention, decoder layer {layer}, mean over heads"
    path = plot_attention(
        attention.weights, attention.src_pieces, attention.tgt_pieces, args.attention, title
    )
    print(f"attention plot: {path}", file=sys.stderr)
