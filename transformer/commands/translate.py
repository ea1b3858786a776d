"""`tmt-translate CHECKPOINT [SENTENCE ...]` (scripts/translate.py): translate arguments, a
file, or standard input.

One output line per input line (or N-best lines); `--sample` draws translations at random
(back-translation, data augmentation); `--attention` plots the first sentence's attention.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from transformer.commands.arguments import check_counts, decode_config, model_parser, setup_logging
from transformer.commands.edge import guarded
from transformer.decoding.sampling import Sampling
from transformer.decoding.translator import Translator
from transformer.evaluation.attention_plot import plot_attention
from transformer.evaluation.evaluate import text_lines
from transformer.export.ct2_translator import CT2Translator
from transformer.loading import load_model

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = model_parser(
        "tmt-translate",
        "Translate sentences given as arguments, in a file (--input), or on standard input "
        "(one output line per input line).",
    )
    parser.add_argument("sentences", nargs="*", metavar="SENTENCE")
    parser.add_argument("--input", type=Path, help="a UTF-8 file, one sentence a line")
    parser.add_argument(
        "--n-best",
        type=int,
        help="print N hypotheses (with --sample: N samples) per input as INDEX<TAB>SCORE<TAB>TEXT",
    )
    sample = parser.add_argument_group(
        "sampling (instead of search; --beam-size and --length-penalty are not used)",
        "A sample's score is its log-probability under the model (CTranslate2 gives its own).",
    )
    sample.add_argument("--sample", action="store_true", help="draw translations at random")
    sample.add_argument("--top-k", type=int, default=0, help="from the K most probable; 0: all")
    sample.add_argument("--top-p", type=float, default=1.0, help="from the nucleus of mass P")
    sample.add_argument("--temperature", type=float, default=1.0, help="divides the logits")
    sample.add_argument("--seed", type=int, default=0, help="one seed, one output")
    parser.add_argument(
        "--attention", type=Path, metavar="FILE.png", help="plot the first sentence's attention"
    )
    parser.add_argument("--layer", type=int, default=-1, help="decoder layer to plot (-1: last)")
    return parser


def _sampling(args: argparse.Namespace) -> Sampling | None:
    if not args.sample:
        return None
    return Sampling(
        top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, seed=args.seed
    )


def _translate(args: argparse.Namespace) -> int:
    check_counts(args, "top_k")
    if not (args.sentences or args.input) and sys.stdin is None:  # started with `<&-`
        raise ValueError(
            "standard input is closed: give sentences as arguments, --input FILE, or a pipe."
        )
    sampling = _sampling(args)  # its checks before the model is loaded
    loaded = load_model(args.checkpoint, device=args.device, ensemble=args.ensemble)
    if sampling is not None:  # N samples fill the N rows a beam of N would take
        args.beam_size = args.n_best or 1
    if args.attention and loaded.model is None:
        raise ValueError("--attention plots our model's attention; give the checkpoint.")
    if args.attention and loaded.ensemble:
        raise ValueError("--attention plots one model's attention; drop --ensemble.")
    if loaded.model is not None and not loaded.ensemble:
        layers = loaded.model.n_decoder_layers
        if not -layers <= args.layer < layers:
            raise ValueError(f"--layer {args.layer}: the model has {layers} layers.")
    decode = decode_config(args, loaded.cfg.decode)
    translator = loaded.translator(decode, sampling=sampling, threads=args.threads)
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
        assert isinstance(translator, Translator)
        _plot(translator, first, args.attention, args.layer)
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


def _write(
    translator: Translator | CT2Translator, lines: list[str], first_index: int, nbest: bool
) -> None:
    """Translate a group of lines and print the results, flushed."""
    if nbest:
        for i, hyps in enumerate(translator.translate_nbest(lines)):
            for text, score in hyps:
                sys.stdout.write(f"{first_index + i}\t{score:.4f}\t{text}\n")
    else:
        sys.stdout.write("".join(text + "\n" for text in translator.translate(lines)))
    sys.stdout.flush()


def _plot(translator: Translator, sentence: str | None, path: Path, layer: int) -> None:
    if not sentence or not sentence.strip():
        logger.warning("no non-empty first sentence: --attention plot skipped")
        return
    attention = translator.attention(sentence, layer=layer)
    number = layer % translator.model.n_decoder_layers + 1
    title = f"cross-attention, decoder layer {number}, mean over heads"
    written = plot_attention(
        attention.weights, attention.src_pieces, attention.tgt_pieces, path, title
    )
    print(f"attention plot: {written}", file=sys.stderr)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_intermixed_args(argv)  # sentences may follow options
    if args.sentences and args.input:
        parser.error("give sentences as arguments or --input FILE, not both")
    return args


def main(argv: list[str] | None = None) -> int:
    """`tmt-translate CHECKPOINT [SENTENCE ...]`; returns the exit status."""
    setup_logging(logging.WARNING)
    return guarded(lambda: _translate(_parse(argv)))
