"""A run folder is data: the names its manifest holds are confined to checkpoints/ (a crafted
manifest deletes nothing outside it and is refused in one line), and a manifest naming a missing
file or a folder is one line, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from transformer.checkpoint import CheckpointError
from transformer.commands.evaluate import main as evaluate_main
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.recovery import open_session


def _state(step: int) -> dict:
    return {
        "model": {"w": torch.full((2,), float(step))},
        "step": step,
        "config": {},
        "tokenizer": {},
        "format_version": 1,
    }


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder whose checkpoints/ holds two saves, and files outside it."""
    checkpoints = CheckpointDir(tmp_path / "run" / "checkpoints")
    for step in (5, 10):
        checkpoints.save(_state(step), is_best=step == 5, periodic=True, keep_last=2)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "data.txt").write_text("keep me")
    return tmp_path / "run"


def _edit_manifest(run: Path, **changes: object) -> Path:
    path = run / "checkpoints" / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    path.write_text(json.dumps({**manifest, **changes}), "utf-8")
    return path


def test_a_manifest_naming_files_outside_its_folder_deletes_nothing_and_is_refused(
    run: Path, tmp_path: Path
) -> None:
    absolute = tmp_path / "abs.txt"
    absolute.write_text("keep me too")
    outside = ["../../victim/data.txt", "../../../victim/data.txt", str(absolute)]
    manifest = _edit_manifest(run, unreferenced=outside)
    with pytest.raises(CheckpointError, match="not a file of its own folder") as error:
        open_session(CheckpointDir(run / "checkpoints"))
    assert str(manifest) in str(error.value) and "\n" not in str(error.value)
    assert (tmp_path / "victim" / "data.txt").read_text() == "keep me"
    assert absolute.read_text() == "keep me too"


@pytest.mark.parametrize("field", ["last", "best", "final"])
def test_an_entry_leading_outside_through_a_symlink_is_refused(
    run: Path, tmp_path: Path, field: str
) -> None:
    (run / "checkpoints" / "elsewhere.pt").symlink_to(tmp_path / "victim" / "data.txt")
    _edit_manifest(run, **{field: {"file": "elsewhere.pt", "step": 10}})
    checkpoints = CheckpointDir(run / "checkpoints")
    with pytest.raises(CheckpointError, match="leads outside"):
        checkpoints.path(getattr(checkpoints.manifest, field))
    assert (tmp_path / "victim" / "data.txt").read_text() == "keep me"


def test_evaluate_refuses_a_crafted_run_folder_in_one_line(
    run: Path, capsys: pytest.CaptureFixture
) -> None:
    _edit_manifest(run, final={"file": "../../victim/data.txt", "step": 10})
    assert evaluate_main([str(run), "--src", "x", "--ref", "y"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "manifest.json" in err


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_a_manifest_naming_a_missing_file_or_a_folder_is_one_line(run: Path, what: str) -> None:
    name = "checkpoint_00000099.pt"
    if what == "folder":
        (run / "checkpoints" / name).mkdir()
    _edit_manifest(run, last={"file": name, "step": 99})
    with pytest.raises(CheckpointError, match=f"names {name}, which") as error:
        open_session(CheckpointDir(run / "checkpoints"))
    assert ("is missing" if what == "missing" else "is not a file") in str(error.value)


def test_an_unreferenced_folder_is_left_alone(run: Path) -> None:
    (run / "checkpoints" / "mine").mkdir()
    (run / "checkpoints" / "mine" / "notes.txt").write_text("x")
    _edit_manifest(run, unreferenced=["mine"])
    open_session(CheckpointDir(run / "checkpoints"))
    assert (run / "checkpoints" / "mine" / "notes.txt").is_file()


@pytest.mark.parametrize("command", ["train", "prepare"])
def test_hydra_run_dir_naming_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, command: str
) -> None:
    from transformer.commands import prepare, train

    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    main = train.main if command == "train" else prepare.main
    assert main([f"hydra.run.dir={a_file}", "experiment=smoke"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"hydra.run.dir={a_file} is a file" in line
    assert a_file.read_text() == "mine"
