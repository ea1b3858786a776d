"""The one error edge of every console command: a user error is one line on standard error and
exit status 2; a bug keeps its traceback. HYDRA_FULL_ERROR=1 shows the traceback of a user error
too (for every command, not only the Hydra ones).

Exit statuses: 0 finished, 2 user error, 128 + N stopped by signal N (after saving), 130 for
Ctrl-C outside training, 1 when the reader of standard output went away.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from transformer.errors import UserError

# The project's user errors, the one list. UserError covers CheckpointError, CorpusError,
# ExportError, ResumeError, DivergenceError and CompileError; ValueError is what the config
# dataclasses raise for a bad value; OSError a missing or unwritable file.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError)


def debug() -> bool:
    """Whether user errors keep their traceback (HYDRA_FULL_ERROR=1)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def report(error: BaseException) -> int:
    """Print a user error as one line on standard error; return exit status 2."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = " ".join(lines) or type(error).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2


def guarded(job: Callable[[], int | None]) -> int:
    """Run a command's `job` behind the edge and return its exit status.

    A `SystemExit` (argparse's usage errors, Hydra's `--help`) gives its own status.
    """
    try:
        return job() or 0
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if _after_ctrl_c(error):  # a pool reports Ctrl-C as its own error (datasets' map)
            return 130
        if not isinstance(error, USER_ERRORS) or debug():
            raise
        return report(error)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1


def _after_ctrl_c(error: BaseException | None) -> bool:
    """Whether `error` was raised while a KeyboardInterrupt was being handled."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__cause__ or error.__context__
    return False
