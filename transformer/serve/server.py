"""Running the app: bind the socket, load the models once listening, stop cleanly on SIGTERM.

A server's clean stop differs from training's: SIGTERM or Ctrl-C stops accepting connections,
finishes the requests in flight (up to the request timeout), and exits 0. Training instead saves
a checkpoint and exits 128 + N, telling the caller that the work was cut short.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
import uvicorn

from transformer.serve.app import Settings, create_app
from transformer.serve.models import check_paths, load_models

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal ends in exit 0 (uvicorn raises it again)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port).

    Raises:
        ValueError: the address cannot be bound (in use, or not this machine's).
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        raise ValueError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port "
            "or --host."
        ) from None
    sock.listen(2048)
    return sock


def serve(
    paths: list[Path],
    settings: Settings,
    *,
    host: str,
    port: int,
    device: str,
    threads: int,
    access_log: bool,
) -> int:
    """Serve until stopped; the exit status (0 stopped cleanly, 2 a model failed to load).

    Raises:
        CheckpointError: a model path does not exist (checked before listening).
        ValueError: the address cannot be bound.
    """
    check_paths(paths)
    if threads > 0:
        torch.set_num_threads(threads)
    sock = listen(host, port)
    status = [0]

    def failed(message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        status[0] = 2
        server.should_exit = True

    app = create_app(settings, lambda: load_models(paths, device, threads), failed)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=int(settings.timeout) + 5,
        server_header=False,
    )
    server = _Server(config)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    print(f"tmt-serve: listening on http://{shown}:{bound[1]}/", file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    print("tmt-serve: stopped", file=sys.stderr, flush=True)
    return status[0]
