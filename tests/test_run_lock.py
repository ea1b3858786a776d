"""One writer per run folder: a second tmt-train, tmt-prepare or tmt-fork on a folder another
process holds exits 2 naming the holder's pid (train.resume=false too); the kernel releases the
lock when the holder dies, so kill -9 leaves no stale lock."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import ONE_THREAD, ROOT

from transformer.run import lock
from transformer.run.lock import RunFolderBusy, hold_run_folder

HOLDER = """
import sys, time
from transformer.run.lock import hold_run_folder
hold_run_folder(sys.argv[1], "test")
print("held", flush=True)
time.sleep(600)
"""


def test_a_held_folder_is_refused_naming_the_holder_and_taken_once_free(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)  # as another process holds it
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    with pytest.raises(RunFolderBusy, match=r"in use by process 4242 .*tmt-train"):
        hold_run_folder(run, "tmt-train")
    os.close(fd)  # the holder ends
    hold_run_folder(run, "tmt-train")
    hold_run_folder(run, "tmt-train")  # this process holds it already: nothing to do
    assert (run / ".lock").read_text() == f"{os.getpid()}\n"
    lock.release(run)


@pytest.fixture
def holder(tmp_path: Path):
    """Another process holding tmp_path/run."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "run")],
        stdout=subprocess.PIPE, text=True, env=ONE_THREAD,
    )  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def _command(name: str, *args: str) -> subprocess.CompletedProcess:
    tool = Path(sys.executable).parent / name
    return subprocess.run(
        [str(tool), *args], cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_writers_are_refused_while_another_process_holds_the_folder_and_kill_9_frees_it(
    holder: subprocess.Popen, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    common = [f"hydra.run.dir={run}", "experiment=smoke", f"data.cache_dir={tmp_path / 'cache'}"]
    for result in (
        _command("tmt-train", *common),
        _command("tmt-train", *common, "train.resume=false"),
        _command("tmt-prepare", *common),
        _command("tmt-fork", str(run), "--update", "1"),
    ):
        assert result.returncode == 2, result.stderr[-2000:]
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert f"in use by process {holder.pid}" in line
    assert not (run / "checkpoints").exists() and not (run / ".hydra").exists()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    hold_run_folder(run, "tmt-train")  # no stale lock
    lock.release(run)
