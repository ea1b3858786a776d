"""Worker processes that die with the process that started them, even after its kill -9.

`datasets.map(num_proc=N)` forks a pool and offers no initializer, so the setting is made in
each forked child (`os.register_at_fork`) while `workers_die_with_parent()` is active, and again
by the worker function itself (`die_with_parent`, for start methods that do not fork). On Linux
the kernel sends the child SIGKILL when its parent dies (`PR_SET_PDEATHSIG`); the children also
ignore SIGINT, so that Ctrl-C in a terminal stops the parent alone, which then ends them,
instead of printing one traceback per worker.

A Ctrl-C is never lost inside the block. Python drops an exception raised in a fork hook or a
finaliser after printing "Exception ignored" (a pool's fork runs `logging`'s hooks), so a Ctrl-C
landing there used to vanish: the map went on and the command exited 0. Within the block, those
dropped interrupts are kept quiet and the block ends in KeyboardInterrupt instead.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_PR_SET_PDEATHSIG = 1
_active = False  # whether forked children are set up (inside `workers_die_with_parent`)
_set_in: int | None = None  # the process that is already set up
_registered = False  # whether the fork hook is registered (once per interpreter)


def die_with_parent() -> None:
    """Make this process die when its parent does (Linux; elsewhere nothing), once per process."""
    global _set_in
    if _set_in == os.getpid():
        return
    _set_in = os.getpid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # no prctl (a sandbox): the pool's own shutdown still applies
    if os.getppid() != parent:  # the parent died before the setting was made
        os._exit(1)


def _after_fork_in_child() -> None:
    if _active:
        die_with_parent()


@contextmanager
def workers_die_with_parent() -> Iterator[None]:
    """Within this block, every forked child dies with this process (see module docstring)."""
    global _active, _registered
    if not _registered:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _registered = True
    previous, _active = _active, True
    try:
        with _ctrl_c_never_lost():
            yield
    except BaseException:  # Ctrl-C, say: the pool's processes go too (its manager may hang on)
        _end_children()
        raise
    finally:
        _active = previous


@contextmanager
def _ctrl_c_never_lost() -> Iterator[None]:
    """Within this block, a Ctrl-C that Python drops (raised in a fork hook or a finaliser) is
    not printed, and the block ends in KeyboardInterrupt where it would have ended normally.

    Only where Python's own Ctrl-C handler is in place, in the main thread (a training loop's
    or a server's handler is left alone).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pressed = False

    def on_ctrl_c(signum: int, frame: object) -> None:
        nonlocal pressed
        pressed = True
        raise KeyboardInterrupt

    def on_dropped(info: object) -> None:  # sys.unraisablehook's argument
        if not isinstance(info.exc_value, KeyboardInterrupt):  # type: ignore[attr-defined]
            previous_hook(info)  # a dropped Ctrl-C is raised again when the block ends

    previous_hook = sys.unraisablehook
    signal.signal(signal.SIGINT, on_ctrl_c)
    sys.unraisablehook = on_dropped
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = previous_hook
    if pressed:  # the block ended normally after a Ctrl-C: something dropped it
        raise KeyboardInterrupt


def _end_children() -> None:
    """Kill this process's children, after stopping every pool from starting new ones.

    A Ctrl-C inside a pool's constructor (as it starts its threads) leaves a pool that nothing
    will close, whose worker thread replaces each killed worker with a new one that outlives us.
    """
    import multiprocess.pool  # datasets' pool library (imported by datasets already)

    handlers = [
        pool._worker_handler
        for pool in gc.get_objects()
        # type(), not isinstance(): the latter reads __class__, which some objects warn on
        if issubclass(type(pool), multiprocess.pool.Pool) and hasattr(pool, "_worker_handler")
    ]
    for handler in handlers:
        handler._state = multiprocess.pool.TERMINATE  # it ends at its next wake-up
    for _ in range(2):  # again for a worker started while its handler was stopping
        for child in multiprocess.active_children():
            child.kill()
            child.join(timeout=5)
        for handler in handlers:
            if handler.ident is not None:  # started
                handler.join(timeout=5)  # woken by its workers' deaths
