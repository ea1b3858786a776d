"""The run folder never lies: saves atomic as a set (a crash at each step of a save, kill -9 at
random moments), pruning/averaging/final.pt by the manifest, a deleted last.pt, a changed
vocabulary, the divergence guard, a full disk and leftover temporaries."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tiny
import torch
from tiny import ONE_THREAD, ROOT, write_tiny_parallel_corpus

from transformer.checkpoint import CheckpointError, average_checkpoints, load_checkpoint
from transformer.commands.edge import guarded
from transformer.commands.evaluate import main as evaluate_main
from transformer.config import (
    TrainRunConfig,
)
from transformer.data.vocabulary import DEFAULT_INPUT_SENTENCE_SIZE
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.fork import fork
from transformer.run.lookup import averaging_candidates, resolve_checkpoint
from transformer.training import trainer
from transformer.training.divergence import DivergenceError
from transformer.training.loop_state import ResumeError

N_UPDATES = 7  # validations (and periodic checkpoints) at 5 and 7


def tiny_train_config(corpus_dir: Path, run_dir: Path, **train: object) -> TrainRunConfig:
    """`tiny.tiny_train_config` for N_UPDATES, averaging the last 2 checkpoints into final.pt."""
    return tiny.tiny_train_config(
        corpus_dir, run_dir, **{"max_updates": N_UPDATES, "average_last": 2, **train}
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_parallel_corpus(tmp_path_factory.mktemp("corpus"))["dir"]


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoints/ folder of an uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    assert trainer.train(tiny_train_config(corpus, run_dir))["step"] == N_UPDATES
    return run_dir / "checkpoints"


# ------------------------------------------------------------------ atomic saves, crashes


class Crash(BaseException):
    """A process dying in the middle of a save (not an Exception: nothing may catch it)."""


SAVE_STEPS = ["write_state", "link", "publish", "collect"]


@pytest.mark.parametrize("crash_after", [1, 2, 3, 4, 5, 6])
def test_a_crash_at_each_step_of_a_save_then_resume_gives_the_uninterrupted_result(
    corpus: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    """The save at the last validation (update 7) dies after its n-th step (1: the state file
    written, 2: last.pt linked, 3: best.pt linked, 4: the manifest published, 5: the old files
    deleted), or final.pt's save after its file is written (6). Resuming and finishing gives
    the uninterrupted run's files."""
    steps_done: list[str] = []
    saving = {"step": None}
    original_save = CheckpointDir.save

    def save(self: CheckpointDir, state: dict, **kwargs: object) -> Path:
        saving["step"] = state["step"]
        return original_save(self, state, **kwargs)

    def crashing(name: str) -> object:
        original = getattr(CheckpointDir, name)

        def step(self: CheckpointDir, *args: object) -> object:
            result = original(self, *args)
            if saving["step"] == N_UPDATES:
                steps_done.append(name)
                if len(steps_done) == crash_after:
                    raise Crash(f"after {steps_done}")
            return result

        return step

    monkeypatch.setattr(CheckpointDir, "save", save)
    for name in SAVE_STEPS:
        monkeypatch.setattr(CheckpointDir, name, crashing(name))
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        trainer.train(tiny_train_config(corpus, run_dir))
    monkeypatch.undo()
    assert trainer.train(tiny_train_config(corpus, run_dir))["step"] == N_UPDATES
    folder = run_dir / "checkpoints"
    for name in ("final.pt", "best.pt", "last.pt"):
        assert_same_weights(_weights(folder / name), _weights(reference / name))
    final, expected = load_checkpoint(folder / "final.pt"), load_checkpoint(reference / "final.pt")
    assert final["description"] == expected["description"]
    assert not list(folder.glob(".*.tmp"))
    checkpoints = CheckpointDir(folder)  # only the manifest's files, and the two links
    assert {p.name for p in folder.glob("*.pt")} == checkpoints.manifest.files() | {
        "last.pt",
        "best.pt",
    }


def _state(step: int, value: float) -> dict:
    return {
        "model": {"w": torch.full((2,), float(value))},
        "step": step,
        "config": {},
        "tokenizer": {},
        "format_version": 1,
    }


def test_pruning_averaging_and_the_reported_file_follow_the_manifest(tmp_path: Path) -> None:
    checkpoints = CheckpointDir(tmp_path)
    for step, best in ((5, True), (10, False), (15, False)):
        checkpoints.save(_state(step, step), is_best=best, periodic=True, keep_last=2)
    checkpoints.save(_state(16, 16), is_best=False, periodic=False, keep_last=2)  # a signal stop
    assert [e.step for e in checkpoints.kept] == [10, 15] and checkpoints.best.step == 5
    assert checkpoints.last.step == 16
    # Files the manifest does not name, even with our names, are never averaged or chosen.
    torch.save(_state(99, 99), tmp_path / "checkpoint_00000099.pt")
    torch.save(_state(98, 98), tmp_path / "final.pt")
    found = averaging_candidates(tmp_path, 2)
    assert [load_checkpoint(p)["step"] for p in found] == [10, 15]
    assert torch.equal(average_checkpoints(found)["w"], torch.full((2,), 12.5))
    assert load_checkpoint(resolve_checkpoint(tmp_path))["step"] == 5  # the best, not final.pt
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 16
    with pytest.raises(CheckpointError, match="keeps 2 checkpoint"):
        averaging_candidates(tmp_path, 3)


def test_evaluate_average_last_averages_the_manifests_kept_checkpoints(
    corpus: Path, reference: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoints"
    shutil.copytree(reference, folder)
    torch.save(load_checkpoint(folder / "last.pt"), folder / "checkpoint_00000099.pt")  # a stray
    out = tmp_path / "eval"
    argv = [
        str(folder / "last.pt"), "--average-last", "2", "--src", str(corpus / "test.en"),
        "--ref", str(corpus / "test.de"), "--max-sentences", "2", "--out-dir", str(out),
    ]  # fmt: skip
    assert evaluate_main(argv) == 0
    (report,) = out.glob("*.json")
    kept = [str(CheckpointDir(folder).path(entry)) for entry in CheckpointDir(folder).kept]
    assert json.loads(report.read_text("utf-8"))["averaged"] == kept
    assert [Path(path).name for path in kept] == [
        "checkpoint_00000005.pt",
        "checkpoint_00000007.pt",
    ]


def test_fork_sets_later_updates_and_a_later_best_aside(tmp_path: Path) -> None:
    checkpoints = CheckpointDir(tmp_path)
    for step, best in ((5, False), (10, True), (15, False)):
        checkpoints.save(_state(step, step), is_best=best, periodic=True, keep_last=3)
    fork(checkpoints, 5)
    assert checkpoints.last.step == 5 and checkpoints.best is None
    assert [e.step for e in checkpoints.kept] == [5]
    assert (
        load_checkpoint(tmp_path / "last.pt")["step"] == 5 and not (tmp_path / "best.pt").exists()
    )
    (aside,) = tmp_path.glob("later-than-5.*")
    assert sorted(p.name for p in aside.iterdir()) == [
        "checkpoint_00000010.pt",
        "checkpoint_00000015.pt",
    ]


def test_a_full_disk_names_the_folder_keeps_the_previous_checkpoint_and_removes_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = CheckpointDir(tmp_path)
    checkpoints.save(_state(5, 5.0), is_best=True, periodic=True, keep_last=2)
    before = sorted(p.name for p in tmp_path.iterdir())

    def full_disk(obj: object, handle: object) -> None:
        handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="no space left on the device of") as error:
        checkpoints.save(_state(10, 10.0), is_best=True, periodic=True, keep_last=2)
    monkeypatch.undo()
    assert str(tmp_path) in str(error.value) and "(update 5) is intact" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 5
    assert CheckpointDir(tmp_path).last.step == 5


def test_leftover_temporaries_are_removed_at_the_start(
    corpus: Path, reference: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference.parent, run_dir)
    leftover = run_dir / "checkpoints" / ".last.pt.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    trainer.train(tiny_train_config(corpus, run_dir, max_updates=8))
    assert not leftover.exists()


# ------------------------------------------------------------------ lineage across runs


def test_deleting_last_pt_starts_a_new_run_that_never_uses_the_old_ones(
    corpus: Path, reference: Path, tmp_path: Path
) -> None:
    """Deleting last.pt (as the old corrupt-checkpoint message advised) starts over; the new
    run's pruning and final.pt see only its own checkpoints."""
    run_dir = tmp_path / "run"
    trainer.train(tiny_train_config(corpus, run_dir, max_updates=12))  # kept: 10 and 12
    (run_dir / "checkpoints" / "last.pt").unlink()
    assert trainer.train(tiny_train_config(corpus, run_dir))["step"] == N_UPDATES
    folder = run_dir / "checkpoints"
    assert [e.step for e in CheckpointDir(folder).kept] == [5, 7]
    assert_same_weights(_weights(folder / "final.pt"), _weights(reference / "final.pt"))
    (old,) = run_dir.glob("checkpoints.replaced-*")
    assert CheckpointDir(old).last.step == 12


def test_an_unreadable_last_state_names_the_ways_out(
    corpus: Path, reference: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference.parent, run_dir)
    last = run_dir / "checkpoints" / CheckpointDir(run_dir / "checkpoints").last.file
    last.write_bytes(b"half a checkpoint")
    with pytest.raises(CheckpointError) as error:
        trainer.train(tiny_train_config(corpus, run_dir, max_updates=8))
    message = str(error.value)
    assert str(last) in message and "could not be read" in message
    assert "tmt-fork (updates 5, 7)" in message and "train.resume=false" in message


def _retokenized_corpus(corpus: Path, folder: Path, *, change: bool) -> Path:
    shutil.copytree(corpus, folder)
    if change:  # a corrected corpus at the same paths: its vocabulary differs
        for path in folder.glob("train.*"):
            path.write_text(path.read_text("utf-8").upper(), "utf-8")
    return folder


def test_resume_refuses_another_vocabulary_and_accepts_a_byte_identical_one(
    corpus: Path, tmp_path: Path
) -> None:
    changed = _retokenized_corpus(corpus, tmp_path / "corpus", change=False)
    run_dir = tmp_path / "run"
    trainer.train(tiny_train_config(changed, run_dir, max_updates=5))
    # The tokenizer deleted and retrained on the same corpus: the same bytes, resume goes on.
    for name in ("tokenizer.json", "spm.model"):
        (run_dir / name).unlink()
    assert trainer.train(tiny_train_config(changed, run_dir, max_updates=6))["step"] == 6
    # The corpus corrected in place and the tokenizer deleted, as the data error advises.
    _retokenized_corpus(corpus, tmp_path / "corpus2", change=True)
    shutil.rmtree(changed)
    shutil.copytree(tmp_path / "corpus2", changed)
    for name in ("tokenizer.json", "spm.model"):
        (run_dir / name).unlink()
    old = load_checkpoint(run_dir / "checkpoints" / "last.pt")["tokenizer_sha256"]
    with pytest.raises(ResumeError, match="SentencePiece model sha256") as error:
        trainer.train(tiny_train_config(changed, run_dir, max_updates=8))
    message = str(error.value)
    assert old[:16] in message and "train.resume=false" in message and "name=" in message
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 6


def test_a_checkpoint_without_a_vocabulary_hash_resumes_with_a_warning(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    trainer.train(tiny_train_config(corpus, run_dir, max_updates=5))
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    for key in ("tokenizer_sha256", "run_id"):  # as written before this version
        del state[key]
    torch.save(state, last)  # in place: the manifest's file is the same inode
    assert trainer.train(tiny_train_config(corpus, run_dir, max_updates=6))["step"] == 6
    assert "written before checkpoints recorded their vocabulary" in caplog.text


def test_a_folder_written_before_manifests_is_adopted(
    corpus: Path, reference: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The old layout: last.pt, best.pt and checkpoint_<N>.pt by name, states without run ids."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference.parent, run_dir)
    folder = run_dir / "checkpoints"
    checkpoints = CheckpointDir(folder)
    for path in folder.glob("*.pt"):  # hard links: each file once
        state = load_checkpoint(path)
        state.pop("run_id", None)
        torch.save(state, path.with_suffix(".new"))
        path.unlink()
    for path in folder.glob("*.new"):
        path.rename(path.with_suffix(".pt"))
    (folder / "manifest.json").unlink()
    assert {p.name for p in folder.glob("*.pt")} == checkpoints.manifest.files() | {
        "last.pt",
        "best.pt",
    }
    assert trainer.train(tiny_train_config(corpus, run_dir, max_updates=8))["step"] == 8
    assert "was written before manifests: adopted last.pt (update 7)" in caplog.text
    assert [e.step for e in CheckpointDir(folder).kept] == [7, 8]


def test_a_fresh_start_in_an_old_folder_takes_the_new_tokenizer_sample_default(
    corpus: Path, tmp_path: Path
) -> None:
    """train.resume=false sets the old tokenizer aside, so the recorded 0 no longer applies."""
    run_dir = tmp_path / "run"
    old = tiny_train_config(corpus, run_dir, max_updates=2)
    old.tokenizer = dataclasses.replace(
        old.tokenizer, input_sentence_size=0
    )  # as before the default
    trainer.train(old)
    trainer.train(tiny_train_config(corpus, run_dir, max_updates=2, resume=False))
    settings = json.loads((run_dir / "tokenizer.json").read_text("utf-8"))["settings"]
    assert settings["input_sentence_size"] == DEFAULT_INPUT_SENTENCE_SIZE


# ------------------------------------------------------------------ divergence


def test_a_diverging_run_stops_after_the_limit_keeping_the_last_good_checkpoint(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    trainer.train(tiny_train_config(corpus, run_dir, max_updates=5))
    last = run_dir / "checkpoints" / "last.pt"
    good = _weights(last)
    cfg = tiny_train_config(corpus, run_dir, max_updates=12, max_nonfinite_updates=2)
    cfg.optim = dataclasses.replace(cfg.optim, lr=1e30)  # finite, so the config accepts it
    with pytest.raises(DivergenceError) as error:
        trainer.train(cfg)
    message = str(error.value)
    assert "2 updates in a row had a non-finite loss" in message
    assert f"{last} (update 5), is kept" in message and "optim.lr" in message
    assert "skipped so far" in caplog.text
    assert load_checkpoint(last)["step"] == 5
    assert_same_weights(_weights(last), good)
    assert load_checkpoint(run_dir / "checkpoints" / "final.pt")["step"] == 5  # of that state
    lines = (run_dir / "metrics.jsonl").read_text("utf-8").splitlines()
    assert json.loads(lines[-1])["event"] == "stop"
    assert json.loads(lines[-1])["reason"] == "diverged"


# ------------------------------------------------------------------ kill -9


_RUNNER = """
import logging
import os
import sys
from pathlib import Path
from test_run_folder import tiny_train_config
from transformer.training import trainer

fsync = os.fsync


def announced_fsync(fd):
    fsync(fd)
    name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    if name.endswith(".tmp"):  # a save's temporary file, written and synced, not yet renamed
        print(f"fsynced {name}", file=sys.stderr, flush=True)
        sys.stdin.readline()  # the test kills the process here, or sends a line to go on


os.fsync = announced_fsync
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
trainer.train(tiny_train_config(Path(sys.argv[1]), Path(sys.argv[2]), max_updates=12))
"""


def _run_until_killed(command: list[str], env: dict[str, str], after: str, at: str) -> str:
    """Start the run and SIGKILL it at the first line of its log that starts with `at` once a
    line starting with `after` was logged; return that line. The run announces each temporary
    file it has synced ("fsynced NAME") and waits for a go-ahead: a kill there lands inside a
    save, whatever the speed of the machine."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stderr is not None
    seen_after, log = not after, []
    for line in process.stderr:
        log.append(line)
        seen_after = seen_after or line.startswith(after)
        if seen_after and line.startswith(at):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return line
        if line.startswith("fsynced "):
            process.stdin.write("\n")
            process.stdin.flush()
    process.wait()
    raise AssertionError(f"the run ended before {at!r}: {''.join(log)[-3000:]}")


@pytest.mark.slow  # four training processes
def test_kill_9_in_a_save_and_in_training_then_resume_is_bit_identical(
    corpus: Path, tmp_path: Path
) -> None:
    """A training process killed with SIGKILL three times, at moments tied to what it is doing
    (inside update 5's save, its state file written but not renamed; between updates 7 and 8;
    inside update 10's save, its manifest written but not renamed) and resumed each time, ends
    with the parameters and Adam moments of an uninterrupted run, bit for bit."""
    reference = tmp_path / "reference"
    trainer.train(tiny_train_config(corpus, reference, max_updates=12))
    run_dir = tmp_path / "killed"
    folder = run_dir / "checkpoints"
    env = {**ONE_THREAD, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}
    command = [sys.executable, "-c", _RUNNER, str(corpus), str(run_dir)]
    kills = [
        ("", "fsynced .checkpoint_00000005.pt."),  # inside a save: the state file
        ("", "update 7 |"),  # in training: resumed from update 5
        ("update 10 |", "fsynced .manifest.json."),  # inside a save: its commit
    ]
    for after, at in kills:
        line = _run_until_killed(command, env, after, at)
        if line.startswith("fsynced "):  # the kill landed inside the save: its file is left
            assert (folder / line.split()[1]).is_file(), line
    assert (folder / "checkpoint_00000010.pt").is_file()  # written and linked, not published
    done = subprocess.run(
        command, cwd=ROOT, env=env, input="\n" * 100, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr and "(update 5)" in done.stderr, done.stderr[-3000:]
    assert not list(folder.glob(".*.tmp"))
    got = load_checkpoint(folder / "last.pt")
    expected = load_checkpoint(reference / "checkpoints" / "last.pt")
    assert got["step"] == expected["step"] == 12
    assert_same_weights(got["model"], expected["model"])
    for index, moments in expected["optimizer"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(got["optimizer"]["state"][index][key], moments[key])
    assert_same_weights(
        _weights(folder / "final.pt"), _weights(reference / "checkpoints" / "final.pt")
    )


# ------------------------------------------------------------------ exit codes


def _script(name: str, corpus: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable, str(ROOT / "scripts" / name), "model=tiny", "data=text_files",
        f"data.train_path={corpus}/train", f"data.valid_path={corpus}/valid",
        f"data.test_path={corpus}/test", f"data.cache_dir={run_dir.parent / 'cache'}",
        "tokenizer.vocab_size=48", f"hydra.run.dir={run_dir}", "train.device=cpu",
        "train.cpu_threads=1", "train.max_tokens=96", "train.max_train_pairs=48",
        "train.validate_every=5", "train.valid_max_sentences=8", "train.evaluate_test=false",
        "train.log_every=1", "decode=greedy", *overrides,
    ]  # fmt: skip


def _one_line_error(done: subprocess.CompletedProcess, *texts: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    for text in texts:
        assert text in line


def test_a_signal_during_validation_saves_that_update_once(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop requested while validating: the validation's checkpoint is the state to resume."""
    validate_and_save = trainer.validate_and_save

    def then_sigterm(run: object) -> dict:
        metrics = validate_and_save(run)
        os.kill(os.getpid(), signal.SIGTERM)  # caught by the trainer's handler
        return metrics

    monkeypatch.setattr(trainer, "validate_and_save", then_sigterm)
    run_dir = tmp_path / "run"
    result = trainer.train(tiny_train_config(corpus, run_dir))
    assert result["stop_signal"] == signal.SIGTERM and result["step"] == 5
    saved = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt"))
    assert saved == ["best.pt", "checkpoint_00000005.pt", "last.pt"], saved


def test_a_second_signal_stops_at_once_with_128_plus_its_number() -> None:
    with trainer.StopOnSignal() as stop:
        stop._handle(signal.SIGTERM, None)
        assert stop.requested == "SIGTERM"
        with pytest.raises(SystemExit) as stopped:
            stop._handle(signal.SIGTERM, None)
    assert stopped.value.code == 128 + signal.SIGTERM


def _signal_at_update_2(corpus: Path, run_dir: Path, signum: int) -> tuple[int, str]:
    """Start scripts/train.py, send `signum` once update 2 is logged; its status and output."""
    command = _script("train.py", corpus, run_dir, "train.max_updates=1000")
    process = subprocess.Popen(
        command, cwd=ROOT, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if "update 2 |" in line:
            process.send_signal(signum)
    return process.wait(), "".join(output)


@pytest.mark.slow  # three training processes
def test_exit_codes_signal_143_finished_0_user_error_2_in_one_line(
    corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    status, text = _signal_at_update_2(corpus, run_dir, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, text[-3000:]
    assert "run the same command again to resume" in text
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    finish = _script("train.py", corpus, run_dir, f"train.max_updates={step + 1}")
    done = subprocess.run(finish, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    other_model = [*finish, "model.d_model=64"]
    done = subprocess.run(other_model, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True)
    _one_line_error(done, "was trained with a different config", "model.d_model")


@pytest.mark.slow  # a real training process
def test_ctrl_c_stops_a_real_run_with_exit_130_and_a_checkpoint_to_resume(
    corpus: Path, tmp_path: Path
) -> None:
    """SIGINT (Ctrl-C) to scripts/train.py: the update is saved, the process exits 128 + 2 with
    the resume hint and no KeyboardInterrupt traceback."""
    run_dir = tmp_path / "run"
    status, text = _signal_at_update_2(corpus, run_dir, signal.SIGINT)
    assert status == 128 + signal.SIGINT == 130, text[-3000:]
    assert "run the same command again to resume" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] >= 2


def test_user_errors_exit_2_in_one_line_unless_hydra_full_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def resume_refused() -> None:
        raise ResumeError("runs/x/checkpoints/last.pt was trained with a different config")

    assert guarded(resume_refused) == 2
    assert capsys.readouterr().err == (
        "error: runs/x/checkpoints/last.pt was trained with a different config\n"
    )
    with pytest.raises(KeyError):  # a bug keeps its traceback
        guarded(lambda: {}["key"])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ResumeError):
        guarded(resume_refused)


@pytest.mark.slow  # scripts/prepare_data.py as a process
def test_prepare_data_reports_a_missing_corpus_in_one_line(tmp_path: Path) -> None:
    command = _script("prepare_data.py", tmp_path / "nowhere", tmp_path / "run")
    done = subprocess.run(command, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True)
    _one_line_error(done, str(tmp_path / "nowhere"))
