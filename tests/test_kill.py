"""kill -9 and Ctrl-C at chosen moments of an export and of a two-process `tmt-prepare`: no
worker outlives its parent, no traceback, and the next export, load or prepare recovers and ends
complete and correct. Kill moments are events (a worker appears, a step of the export's swap is
reached), never wall time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ct2_helpers import require_ctranslate2
from tiny import ONE_THREAD, ROOT, tiny_assets, write_checkpoint, write_tiny_parallel_corpus

from transformer.export.folder import export_checkpoint
from transformer.loading import load_model

pytestmark = pytest.mark.slow

ENV = {**ONE_THREAD, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _group(pgid: int) -> set[int]:
    """Processes of the process group `pgid` (a command started in its own session), zombies
    left out."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and fields[0] != "Z" and int(fields[2]) == pgid:
            found.add(int(entry.name))
    return found


def _gone(pids: set[int], timeout: float = 20.0) -> bool:
    """Whether every process of `pids` has ended (zombies count as ended) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = set()
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.add(pid)
        if not alive:
            return True
        time.sleep(0.1)
    return False


# ------------------------------------------------------------------ two-process prepare


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus with its training split repeated to 40,000 pairs (a map of some length)."""
    folder = tmp_path_factory.mktemp("kill") / "corpus"
    paths = write_tiny_parallel_corpus(folder)
    for lang in ("en", "de"):
        paths[f"train.{lang}"].write_text(paths[f"train.{lang}"].read_text("utf-8") * 100)
    return folder


def _prepare(corpus: Path, run_dir: Path, cache: Path) -> list[str]:
    return [
        sys.executable, str(ROOT / "scripts" / "prepare_data.py"), "model=tiny",
        "data=text_files", f"data.train_path={corpus}/train", f"data.valid_path={corpus}/valid",
        f"data.test_path={corpus}/test", f"data.cache_dir={cache}", "data.num_proc=2",
        "tokenizer.vocab_size=48", f"hydra.run.dir={run_dir}", "train.device=cpu",
    ]  # fmt: skip


def _ctrl_c_as_at_a_terminal() -> None:
    """In the child before it runs: Ctrl-C not ignored, even where the test runner was started
    in the background of a shell (which starts its jobs with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_until_workers(
    command: list[str], log: Path, ignoring_sigint: bool = False
) -> tuple[subprocess.Popen, set[int]]:
    """Start `command` in its own process group, its output to `log` (a pipe would wait for
    workers that outlive it); return once its pool is at work, and with `ignoring_sigint` once
    every pool process ignores SIGINT (Ctrl-C amid a fork is lost)."""
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=ENV, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_ctrl_c_as_at_a_terminal,
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        workers = _children(process.pid)  # the pool's 2 workers, then its queue's manager:
        if len(workers) >= 3 and (not ignoring_sigint or all(map(_ignores_sigint, workers))):
            return process, workers
        time.sleep(0.005)
    process.kill()
    raise AssertionError(f"no worker pool appeared: {log.read_text()[-2000:]}")


def _ignores_sigint(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = int(status.split("SigIgn:")[1].split()[0], 16)
    return bool(ignored & (1 << (signal.SIGINT - 1)))


def _stats(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout[done.stdout.index("; vocab") :]  # after the tokenizer's folder


def test_kill_9_during_a_two_process_prepare_leaves_no_worker_and_recovers(
    corpus: Path, tmp_path: Path
) -> None:
    reference = subprocess.run(
        _prepare(corpus, tmp_path / "reference", tmp_path / "reference_cache"),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    command = _prepare(corpus, tmp_path / "run", tmp_path / "cache")
    process, workers = _start_until_workers(command, tmp_path / "log")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _gone(workers), f"workers {workers} outlived their parent"
    again = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert _stats(again) == _stats(reference)
    tokenizers = (tmp_path / name / "spm.model" for name in ("run", "reference"))
    assert len({path.read_bytes() for path in tokenizers}) == 1


def test_ctrl_c_during_a_two_process_prepare_exits_130_without_a_traceback(
    corpus: Path, tmp_path: Path
) -> None:
    command = _prepare(corpus, tmp_path / "run", tmp_path / "cache")
    process, workers = _start_until_workers(command, tmp_path / "log", ignoring_sigint=True)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    output = (tmp_path / "log").read_text()
    assert process.returncode == 130, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert _gone(workers)
    assert _gone(_group(process.pid))  # nor any worker started after the Ctrl-C


# ------------------------------------------------------------------ export

# Runs an export that stops (marks the moment in a file, then sleeps) at one step of its swap.
_EXPORTER = """
import shutil, sys, time
from pathlib import Path
from transformer.export import folder, swap

ckpt, out, quantization, moment, mark = sys.argv[1:]
Path(out).parent.mkdir(parents=True, exist_ok=True)

def stop():
    Path(mark).write_text("here")
    time.sleep(600)

def pausing(step):
    def wrapped(*args, **kwargs):
        if moment == step:
            stop()
        return ORIGINAL[step](*args, **kwargs)
    return wrapped

ORIGINAL = {"written": swap.swap_in, "writing": folder.Tokenizer.save,
            "removing": shutil.rmtree, "set_aside": Path.rename}
folder.swap_in = pausing("written")
folder.Tokenizer.save = pausing("writing")
swap.shutil.rmtree = pausing("removing")
_rename = Path.rename
def rename(self, target):
    result = _rename(self, target)
    if moment == "set_aside" and str(target).endswith(".old"):
        stop()
    return result
Path.rename = rename
folder.export_checkpoint(Path(ckpt), Path(out), quantization)
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A tiny checkpoint and the export.json of its int8 export, made without interruption."""
    require_ctranslate2()
    folder = tmp_path_factory.mktemp("kill_export")
    model, tokenizer, cfg = tiny_assets(write_tiny_parallel_corpus(folder / "corpus"))
    ckpt = write_checkpoint(folder / "run" / "last.pt", model, tokenizer, cfg)
    export_checkpoint(ckpt, folder / "reference", "int8")
    return {"ckpt": ckpt, "files": _files(folder / "reference")}


def _files(folder: Path) -> dict[str, str]:
    return json.loads((folder / "export.json").read_text("utf-8"))["files"]


def _kill_at(checkpoint: dict, out: Path, moment: str) -> None:
    mark = out.parent / "mark"
    command = [sys.executable, "-c", _EXPORTER, str(checkpoint["ckpt"]), str(out), "int8"]
    process = subprocess.Popen([*command, moment, str(mark)], cwd=ROOT, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mark.exists(), f"the export ended (status {process.returncode}) before {moment}"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    mark.unlink()


@pytest.mark.parametrize("moment", ["writing", "written", "set_aside", "removing"])
@pytest.mark.parametrize("next_step", ["load", "export"])
def test_kill_9_during_an_export_leaves_an_export_and_the_next_step_recovers(
    checkpoint: dict, tmp_path: Path, moment: str, next_step: str
) -> None:
    out = tmp_path / "exported"
    export_checkpoint(checkpoint["ckpt"], out, "float32")  # the export being replaced
    _kill_at(checkpoint, out, moment)
    if moment != "set_aside":  # the one moment with no folder at OUT_DIR; the load recovers it
        assert json.loads((out / "export.json").read_text("utf-8"))["files"]
    if next_step == "load":
        # Killed before its swap began, an export leaves the earlier one in place; after, its own.
        expected = "float32" if moment in ("writing", "written") else "int8"
        assert load_model(out, device="cpu").exported.quantization == expected
    else:
        export_checkpoint(checkpoint["ckpt"], out, "int8")
        assert _files(out) == checkpoint["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # no leftovers
