"""The one error edge of the console commands: a user error is one line and exit 2, checked
before anything is written (a refused tmt-train leaves no run folder), Hydra's own flags still
work, a missing or failing compiler names train.compile=false, and messages name tmt-* commands."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from transformer.commands import evaluate, fork, train

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "transformer"


def _one_line_exit_2(status: int, capsys: pytest.CaptureFixture, *says: str) -> str:
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert all(text in err for text in says), err
    return err


def test_a_bad_value_is_refused_before_the_run_folder_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run_dir = tmp_path / "X"
    status = train.main(["optim.lr=inf", f"hydra.run.dir={run_dir}"])
    _one_line_exit_2(status, capsys, "optim.lr=inf must be a finite number")
    assert not run_dir.exists()


@pytest.mark.parametrize("argument", ["--optim.lr=0.1", "-x", "--lr", "-train.max_updates=5"])
def test_an_argument_starting_with_a_dash_is_checked_too(
    argument: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    status = train.main([argument, f"hydra.run.dir={tmp_path / 'X'}"])
    _one_line_exit_2(status, capsys, f"{argument}: not an option of tmt-train", "tmt-train --help")
    assert not (tmp_path / "X").exists()


def test_a_bad_override_beside_a_hydra_flag_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    status = train.main(["--cfg", "job", "train.max_update=5"])
    _one_line_exit_2(status, capsys, "Could not override 'train.max_update'")


def test_hydra_flags_still_work(capsys: pytest.CaptureFixture) -> None:
    assert train.main(["--cfg", "job", "optim.lr=0.5", "-p", "optim"]) == 0
    assert "lr: 0.5" in capsys.readouterr().out


def test_a_missing_compiler_is_found_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from transformer.training import compiling

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(compiling, "missing_for_compile", lambda device: ["a C/C++ compiler"])
    status = train.main(["train.compile=true", "train.device=cpu", f"hydra.run.dir={tmp_path}/X"])
    _one_line_exit_2(status, capsys, "a C/C++ compiler", "train.compile=false")
    assert not (tmp_path / "X").exists()


def test_a_compile_failure_is_one_line_naming_the_switch_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import torch

    from transformer.commands.edge import guarded
    from transformer.training.compiling import compile_errors

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def first_update() -> int:
        with compile_errors():
            raise torch._dynamo.exc.BackendCompilerFailed(
                lambda *args: None, RuntimeError("cc1plus: fatal error: Python.h\nmore lines"), None
            )
        return 0

    _one_line_exit_2(guarded(first_update), capsys, "cc1plus", "train.compile=false")


def test_usage_errors_and_messages_name_the_tmt_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert evaluate.main(["ckpt.pt", "--bogus"]) == 2
    assert "tmt-evaluate: error: unrecognized arguments: --bogus" in capsys.readouterr().err
    (tmp_path / "checkpoints").mkdir()
    status = fork.main([str(tmp_path), "--update", "3"])
    _one_line_exit_2(status, capsys, "holds no run")


# A script name in a string that is not a docstring: a message naming the script, not the command.
_SCRIPT_NAME = re.compile(r"\b(?:fork_run|evaluate|translate|export|train|prepare_data)\.py\b")


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and not node.value.startswith("scripts/")  # a path the benchmarks run, not a message
    ]


def test_no_message_names_a_script_instead_of_its_command() -> None:
    found = [
        f"{path.relative_to(PACKAGE_DIR)}:{line}: {text!r}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for line, text in _strings(path)
        if _SCRIPT_NAME.search(text)
    ]
    assert found == []
