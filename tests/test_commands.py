"""The console commands of pyproject.toml's [project.scripts], run from a folder outside the
checkout: tmt-prepare, tmt-benchmark, tmt-export and tmt-fork answer --help; tmt-train trains
(finding configs/, logging to train.log and metrics.jsonl), tmt-evaluate scores and tmt-translate
translates the run, and the table scripts read its metrics.jsonl.

Where this checkout is the one installed in this Python (CI's `pip install -e`), the installed
commands themselves run; elsewhere their entry-point functions, with this checkout first on the
path, which is all an installed command does.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from tiny import ONE_THREAD, ROOT

COMMANDS = (
    "tmt-train", "tmt-prepare", "tmt-evaluate", "tmt-translate", "tmt-benchmark", "tmt-export",
    "tmt-fork", "tmt-serve",
)  # fmt: skip
HYDRA_COMMANDS = ("tmt-train", "tmt-prepare")


def entry_points() -> dict[str, str]:
    """command -> "module:function", from pyproject.toml's [project.scripts]."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', section, re.M))


def _installed_from_this_checkout() -> bool:
    try:
        direct_url = importlib.metadata.distribution("transformer-mt").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    url = urllib.parse.urlparse(json.loads(direct_url or "{}").get("url", ""))
    return url.scheme == "file" and Path(urllib.parse.unquote(url.path)).resolve() == ROOT


def command(name: str) -> list[str]:
    """The argv that runs console command `name`."""
    installed = Path(sys.executable).parent / name
    if installed.is_file() and _installed_from_this_checkout():
        return [str(installed)]
    module, function = entry_points()[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; "
    return [sys.executable, "-c", code + f"sys.exit({function}())"]


def run(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run command `name` (or a scripts/ file) in `cwd`; assert it succeeded."""
    argv = command(name) if name in COMMANDS else [sys.executable, str(ROOT / "scripts" / name)]
    env = {**ONE_THREAD, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*argv, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_pyproject_names_every_command() -> None:
    assert set(COMMANDS) == set(entry_points())


@pytest.mark.slow  # console scripts as processes
@pytest.mark.parametrize(
    "name", ["tmt-prepare", "tmt-benchmark", "tmt-export", "tmt-fork", "tmt-serve"]
)
def test_command_answers_help_outside_the_checkout(name: str, tmp_path: Path) -> None:
    out = run(name, "--help", cwd=tmp_path).stdout
    if name in HYDRA_COMMANDS:  # Hydra lists the config groups it found in configs/
        assert "== Configuration groups ==" in out and "model: base, big, multi30k" in out, out
    else:
        assert out.startswith(f"usage: {name} "), out


@pytest.mark.slow
def test_train_evaluate_translate_and_tables_outside_the_checkout(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    corpus, work = tiny_parallel_corpus["dir"], tmp_path / "elsewhere"
    work.mkdir()
    run(
        "tmt-train", "data=text_files", f"data.train_path={corpus}/train",
        f"data.valid_path={corpus}/valid", f"data.test_path={corpus}/test",
        f"data.cache_dir={tmp_path / 'cache'}", "model=tiny", "decode=greedy",
        "tokenizer.vocab_size=48", "train.max_tokens=256", "train.max_updates=4",
        "train.validate_every=2", "train.valid_max_sentences=4", "train.log_every=2",
        "train.device=cpu", "train.average_last=2", "hydra.run.dir=run", cwd=work,
    )  # fmt: skip
    run_dir = work / "run"  # hydra.run.dir relative to where the command ran
    assert "validation at update 4" in (run_dir / "train.log").read_text(encoding="utf-8")
    assert (run_dir / "checkpoints" / "final.pt").is_file()

    run("tmt-evaluate", "run", "--max-sentences", "8", cwd=work)
    done = run("tmt-translate", "run", "A man runs.", cwd=work)
    assert len(done.stdout.splitlines()) == 1

    table = run("results_table.py", "run", cwd=work).stdout.splitlines()
    assert len(table) == 3 and table[2].startswith("| en→de | test | ")
    assert "(4 updates, max_updates)" in table[2]
    curves = run("validation_curves.py", "run", "--metric", "loss", cwd=work).stdout
    assert curves.splitlines()[0] == "| loss at update | 2 | 4 |"
