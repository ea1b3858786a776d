"""A Ctrl-C inside `workers_die_with_parent` (where datasets' pools run) is never lost, even when
Python drops it: raised in a finaliser or a fork hook, it is printed as "Exception ignored" and
the code goes on. The finaliser stands in for the fork hook here (the same path in Python)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator

import pytest

from transformer.data.workers import workers_die_with_parent


class _CtrlCWhenCollected:
    """Presses Ctrl-C from its finaliser, where Python drops the KeyboardInterrupt."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


def _drop_a_ctrl_c() -> None:
    _CtrlCWhenCollected()  # collected at once: the KeyboardInterrupt is raised in __del__


@pytest.fixture(autouse=True)
def ctrl_c_handled_by_python() -> Iterator[None]:
    """Python's own Ctrl-C handler, as in a terminal, even where the test runner was started in
    the background of a shell (SIGINT ignored: the block then leaves Ctrl-C alone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def dropped(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """The exceptions Python drops, as its "Exception ignored" printer would get them."""
    found: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: found.append(info.exc_value))
    return found


def test_python_drops_a_ctrl_c_raised_in_a_finaliser(dropped: list[BaseException]) -> None:
    _drop_a_ctrl_c()  # outside the block: no exception reaches this code
    assert [type(error) for error in dropped] == [KeyboardInterrupt]


def test_a_dropped_ctrl_c_ends_the_block_in_keyboard_interrupt_without_a_traceback(
    dropped: list[BaseException],
) -> None:
    went_on = False
    with pytest.raises(KeyboardInterrupt), workers_die_with_parent():
        _drop_a_ctrl_c()
        went_on = True  # the interrupt was dropped; the block still ends in it
    assert went_on
    assert dropped == []  # nothing printed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_in_the_block_stops_it_at_once() -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt), workers_die_with_parent():
        signal.raise_signal(signal.SIGINT)
        reached = True
    assert not reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_without_ctrl_c_ends_normally() -> None:
    with workers_die_with_parent():
        _ = [n * n for n in range(1000)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
