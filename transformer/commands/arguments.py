"""What the inference commands share: the model and search arguments, the decode config they
give, and logging."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from pathlib import Path

from transformer.config import DEVICES, DecodeConfig

_DECODE_FLAGS = ("beam_size", "length_penalty", "max_len_a", "max_len_b", "max_tokens", "n_best")
_FLAG_NAMES = re.compile(r"\b(?:decode\.)?(" + "|".join(_DECODE_FLAGS) + r")\b")


def model_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser for the command `prog` with the model argument, device, ensemble and search
    options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="a .pt checkpoint written by training; a run folder (its final.pt, else best.pt, "
        "else last.pt); or a folder written by tmt-export, decoded with CTranslate2",
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
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help=f"CTranslate2 intra-op threads, 0 to {max_threads()} (0: its default)",
    )
    group = parser.add_argument_group(
        "search (defaults: the checkpoint's decode config)",
        "With an exported folder, CTranslate2 applies the closest equivalent: its length "
        "penalty divides by length^alpha (ours: GNMT's ((5+length)/6)^alpha), and its maximum "
        "length is one number per batch (the largest a*|src|+b of the batch; each output is then "
        "cut to its own limit).",
    )
    group.add_argument("--beam-size", type=int, help="1 is greedy search")
    group.add_argument("--length-penalty", type=float, help="GNMT alpha; 0 disables")
    group.add_argument("--max-len-a", type=float, help="output length limit a * |src| + b")
    group.add_argument("--max-len-b", type=int, help="the b of a * |src| + b")
    group.add_argument("--max-tokens", type=int, help="batch budget: source tokens x beam")
    return parser


def max_threads() -> int:
    """The most `--threads` accepted: 4 per CPU core (more only slows decoding down)."""
    return 4 * (os.cpu_count() or 1)


def check_counts(args: argparse.Namespace, *names: str) -> None:
    """Refuse a negative value of the integer options `names` (and `--threads` out of range).

    Raises:
        ValueError: naming the flag.
    """
    for name in names:
        if getattr(args, name) < 0:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} {getattr(args, name)} must be >= 0.")
    if not 0 <= args.threads <= max_threads():
        raise ValueError(f"--threads {args.threads} must be in 0 .. {max_threads()}.")


def decode_config(args: argparse.Namespace, stored: DecodeConfig) -> DecodeConfig:
    """The stored decode config with the search flags that were given (validated again).

    `args` must carry every search flag (`model_parser` adds all but n_best, which the
    commands add themselves).
    """
    flags = vars(args)
    given = {k: flags[k] for k in _DECODE_FLAGS if flags.get(k) is not None}
    if "beam_size" in given and "n_best" not in given:
        given["n_best"] = min(stored.n_best, given["beam_size"])
    try:
        return dataclasses.replace(stored, **given)
    except ValueError as error:  # DecodeConfig names its keys (decode.n_best); users typed flags
        message = _FLAG_NAMES.sub(lambda m: "--" + m[1].replace("_", "-"), str(error))
        raise ValueError(message) from None


def setup_logging(level: int) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
