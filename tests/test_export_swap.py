"""Export replaces OUT_DIR by a swap a kill cannot leave empty: `.` and trailing slashes work,
a folder holding other files is refused untouched, the folder is readable like any other, and
the halves a killed export leaves beside OUT_DIR are recovered or removed by the next export or
load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ct2_helpers import require_ctranslate2
from tiny import tiny_assets, write_checkpoint, write_tiny_parallel_corpus

from transformer.commands.export import main as export_main
from transformer.export.folder import export_checkpoint
from transformer.loading import load_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_ctranslate2()
    folder = tmp_path_factory.mktemp("swap")
    model, tokenizer, cfg = tiny_assets(write_tiny_parallel_corpus(folder / "corpus"))
    return write_checkpoint(folder / "run" / "last.pt", model, tokenizer, cfg)


def _quantization(folder: Path) -> str:
    return json.loads((folder / "export.json").read_text("utf-8"))["quantization"]


def test_exporting_into_the_current_folder_replaces_the_export(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "exported"
    export_checkpoint(ckpt, out, "float32")
    monkeypatch.chdir(out)
    assert export_main([str(ckpt), ".", "--quantization", "int8"]) == 0
    assert _quantization(out) == "int8"
    assert export_main([str(ckpt), f"{out}/", "--quantization", "int16"]) == 0
    assert _quantization(out) == "int16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # nothing left beside


def test_a_folder_with_other_files_is_refused_untouched(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "exported"
    export_checkpoint(ckpt, out, "float32")
    (out / "notes.txt").write_text("mine", "utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.chdir(out)
    assert export_main([str(ckpt), "."]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "notes.txt" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]


def test_the_exported_folder_is_readable_like_any_other(ckpt: Path, tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        export_checkpoint(ckpt, tmp_path / "exported", "float32")
    finally:
        os.umask(umask)
    assert (tmp_path / "exported").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "exported" / "model.bin").stat().st_mode & 0o777 == 0o644


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _halves(ckpt: Path, tmp_path: Path, new: str, old: str) -> tuple[Path, Path]:
    """What a kill between the swap's renames leaves: no OUT_DIR, the new export and the old."""
    stem = f".exported.tmt-export-{_dead_pid()}-0a1b2c3d"
    export_checkpoint(ckpt, tmp_path / "new", new)
    (tmp_path / "new").rename(tmp_path / f"{stem}.new")
    export_checkpoint(ckpt, tmp_path / "old", old)
    (tmp_path / "old").rename(tmp_path / f"{stem}.old")
    return tmp_path / "exported", tmp_path / stem


@pytest.mark.parametrize("how", ["load", "export"])
def test_a_kill_between_the_renames_is_finished_by_the_next_load_or_export(
    ckpt: Path, tmp_path: Path, how: str
) -> None:
    out, _ = _halves(ckpt, tmp_path, new="int8", old="float32")
    if how == "load":
        assert load_model(out, device="cpu").exported.quantization == "int8"
    else:
        export_checkpoint(ckpt, out, "int16")
        assert _quantization(out) == "int16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]


def test_an_incomplete_new_export_puts_the_old_one_back(ckpt: Path, tmp_path: Path) -> None:
    out, stem = _halves(ckpt, tmp_path, new="int8", old="float32")
    (stem.parent / f"{stem.name}.new" / "model.bin").write_bytes(b"torn")
    assert load_model(out, device="cpu").exported.quantization == "float32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]


def test_a_live_exports_folder_is_left_alone(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    export_checkpoint(ckpt, out, "float32")
    live = tmp_path / f".exported.tmt-export-{os.getpid()}-0a1b2c3d.new"
    shutil.copytree(out, live)
    export_checkpoint(ckpt, out, "int8")
    assert live.is_dir() and _quantization(out) == "int8"
