"""`tmt-serve MODEL... [--host 127.0.0.1] [--port 5000] [--max-chars N]`: an HTTP server.

Serves LibreTranslate's API (`POST /translate`, `GET /languages`), our own (`POST
/api/translate`), a page at `/`, `/health`, `/models` and `/metrics` (docs/serving.md). Needs the
serve extra (`pip install -e ".[serve]"`), imported only when the server starts, so `--help`
and `import transformer` work without it.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from transformer.commands.arguments import setup_logging
from transformer.commands.edge import guarded
from transformer.config import DEVICES

API_KEY_ENV = "TMT_SERVE_API_KEY"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve models over HTTP: LibreTranslate's API, our own JSON API and a page.",
        epilog=f"The API key may also come from ${API_KEY_ENV}. SIGTERM or Ctrl-C finishes the "
        "requests in flight, then exits 0.",
    )
    parser.add_argument(
        "models", type=Path, nargs="+", metavar="MODEL",
        help="a .pt checkpoint, a run folder or a tmt-export folder; several: one per direction",
    )  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="0: any free port")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA if present")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    limits = parser.add_argument_group("limits per request (over them: 413 naming the limit)")
    limits.add_argument("--max-chars", type=int, default=5000, help="characters (all text)")
    limits.add_argument("--max-sentences", type=int, default=128, help="sentences (lines)")
    limits.add_argument("--max-pieces", type=int, help="pieces per sentence (default: the model's)")
    limits.add_argument("--max-alternatives", type=int, default=8, help="n-best per sentence")
    limits.add_argument("--max-beam", type=int, default=16, help="beam size")
    limits.add_argument("--timeout", type=float, default=30.0, help="seconds to answer (503 after)")
    batch = parser.add_argument_group("dynamic batching")
    batch.add_argument(
        "--max-batch-wait", type=float, default=5.0, metavar="MS",
        help="how long the oldest request waits for others to join its batch (milliseconds)",
    )  # fmt: skip
    batch.add_argument(
        "--max-batch-tokens", type=int, default=8192, help="budget: source tokens x beam per batch"
    )
    batch.add_argument("--max-batch-sentences", type=int, default=64, help="sentences per batch")
    batch.add_argument(
        "--no-batching", action="store_true", help="decode each request alone (for comparison)"
    )
    access = parser.add_argument_group("access")
    access.add_argument("--api-key", help=f"require this api_key field (or set ${API_KEY_ENV})")
    access.add_argument(
        "--cors", action="append", default=[], metavar="ORIGIN",
        help="allow browser pages from ORIGIN to call the API (repeatable; default: none)",
    )  # fmt: skip
    access.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def _check(args: argparse.Namespace) -> None:
    positive = ("max_chars", "max_sentences", "max_alternatives", "max_beam", "max_batch_tokens")
    for name in (*positive, "max_batch_sentences"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1.")
    if args.max_pieces is not None and args.max_pieces < 1:
        raise ValueError("--max-pieces must be >= 1.")
    if args.timeout <= 0 or args.max_batch_wait < 0:
        raise ValueError("--timeout must be > 0 and --max-batch-wait >= 0.")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: give 0..65535.")


def _serve(args: argparse.Namespace) -> int:
    _check(args)
    try:  # the serve extra
        from transformer.serve.app import Settings
        from transformer.serve.batching import BatchLimits
        from transformer.serve.requests import Limits
        from transformer.serve.server import serve
    except ImportError as error:
        raise ValueError(
            f'tmt-serve needs the serve extra ({error.name} is missing): pip install -e ".[serve]"'
        ) from None
    settings = Settings(
        limits=Limits(
            max_chars=args.max_chars, max_sentences=args.max_sentences,
            max_pieces=args.max_pieces, max_alternatives=args.max_alternatives,
            max_beam=args.max_beam,
        ),
        batching=BatchLimits(
            max_wait=args.max_batch_wait / 1000, max_tokens=args.max_batch_tokens,
            max_sentences=args.max_batch_sentences, one_request=args.no_batching,
        ),
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        cors=args.cors,
        timeout=args.timeout,
    )  # fmt: skip
    return serve(
        args.models, settings, host=args.host, port=args.port, device=args.device,
        threads=args.threads, access_log=args.access_log,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`tmt-serve MODEL... [options]`; returns the exit status."""
    args = _parser().parse_args(argv)
    setup_logging(logging.INFO)
    return guarded(lambda: _serve(args))
