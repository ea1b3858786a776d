"""The inference commands' edge: bad numbers (NaN, inf, out of range), closed standard input,
and missing, truncated or swapped files in an exported folder are one line and exit 2; a
sample's score is a number."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import multiprocess
import pytest
import torch
from ct2_helpers import require_ctranslate2
from tiny import ONE_THREAD, ROOT, tiny_assets, write_checkpoint, write_tiny_parallel_corpus

from transformer.commands.edge import guarded
from transformer.commands.evaluate import main as evaluate_main
from transformer.commands.translate import main as translate_main
from transformer.data.tokenizer import train_tokenizer
from transformer.export.folder import export_checkpoint


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untrained tiny checkpoint and its float32 export."""
    require_ctranslate2()
    folder = tmp_path_factory.mktemp("edges")
    corpus = write_tiny_parallel_corpus(folder / "corpus")
    model, tokenizer, cfg = tiny_assets(corpus)
    ckpt = write_checkpoint(folder / "run" / "last.pt", model, tokenizer, cfg)
    export_checkpoint(ckpt, folder / "exported", "float32")
    other_tokenizer = train_tokenizer(
        corpus["train.de"].read_text("utf-8").splitlines(),
        corpus["train.en"].read_text("utf-8").splitlines(),
        src_lang="en", tgt_lang="de", model_type="bpe", vocab_size=48, joint=True,
        character_coverage=1.0, input_sentence_size=0,
    )  # fmt: skip
    other_tokenizer.save(folder / "other_tokenizer")
    return {"ckpt": ckpt, "exported": folder / "exported", "other": folder / "other_tokenizer"}


def _one_line_exit_2(capsys: pytest.CaptureFixture, status: int, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


BAD_SAMPLING = [
    ["--temperature", "nan"],
    ["--temperature", "inf"],
    ["--top-p", "nan"],
    ["--seed", "-1"],
]


@pytest.mark.parametrize("model", ["ckpt", "exported"])
@pytest.mark.parametrize("flags", BAD_SAMPLING, ids=" ".join)
def test_bad_sampling_numbers_are_one_line(
    assets: dict, model: str, flags: list[str], capsys: pytest.CaptureFixture
) -> None:
    status = translate_main([str(assets[model]), "--sample", *flags, "A man."])
    _one_line_exit_2(capsys, status, flags[0])


@pytest.mark.parametrize("threads", ["-1", "100000"])
def test_threads_out_of_range_is_one_line(
    assets: dict, threads: str, capsys: pytest.CaptureFixture
) -> None:
    status = translate_main([str(assets["exported"]), "--threads", threads, "A man."])
    _one_line_exit_2(capsys, status, "--threads")


@pytest.mark.parametrize(
    "flags", [["--average-last", "-1"], ["--max-sentences", "-5"]], ids=" ".join
)
def test_negative_counts_are_refused(
    assets: dict, flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status = evaluate_main([str(assets["ckpt"]), *flags, "--out-dir", str(tmp_path)])
    _one_line_exit_2(capsys, status, flags[0])
    assert not tmp_path.joinpath("x").exists() and not any(tmp_path.iterdir())


def test_closed_stdin_is_one_line(assets: dict) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "translate.py"), str(assets["ckpt"])],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=ONE_THREAD,
        timeout=120,
        pass_fds=(),
        preexec_fn=lambda: __import__("os").close(0),
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith("error: ") and "standard input" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("model", ["ckpt", "exported"])
def test_a_sample_has_a_score(assets: dict, model: str, capsys: pytest.CaptureFixture) -> None:
    args = [str(assets[model]), "--sample", "--n-best", "2", "--threads", "1", "A man."]
    assert translate_main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    scores = [float(line.split("\t")[1]) for line in lines]
    assert all(math.isfinite(s) and s <= 0 for s in scores), lines


def _broken_copy(assets: dict, tmp_path: Path, name: str, how: str) -> Path:
    folder = tmp_path / "exported"
    shutil.copytree(assets["exported"], folder)
    path = folder / name
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # another tokenizer's model
        shutil.copy(assets["other"] / name, path)
    return folder


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("model.bin", "missing"),
        ("model.bin", "truncated"),
        ("shared_vocabulary.json", "missing"),
        ("shared_vocabulary.json", "truncated"),
        ("spm.model", "swapped"),
    ],
)
def test_a_broken_export_names_the_file(
    assets: dict, tmp_path: Path, name: str, how: str, capsys: pytest.CaptureFixture
) -> None:
    folder = _broken_copy(assets, tmp_path, name, how)
    status = translate_main([str(folder), "--threads", "1", "A man."])
    _one_line_exit_2(capsys, status, name)


def test_an_export_from_before_file_hashes_still_loads(
    assets: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "exported"
    shutil.copytree(assets["exported"], folder)
    record = json.loads((folder / "export.json").read_text("utf-8"))
    record.pop("files")
    (folder / "export.json").write_text(json.dumps(record), "utf-8")
    assert translate_main([str(folder), "--threads", "1", "A man."]) == 0
    assert capsys.readouterr().out.strip()


def test_a_pickle_exploit_is_refused_in_one_line_without_advice_to_allow_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    torch.save({"model": Exploit()}, tmp_path / "evil.pt")
    status = translate_main([str(tmp_path / "evil.pt"), "A man."])
    err = _one_line_exit_2(capsys, status, "evil.pt", "refused")
    assert "weights_only" not in err and not marker.exists()


def test_ctrl_c_reported_by_a_pool_is_exit_130_without_a_traceback(
    capsys: pytest.CaptureFixture,
) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    def pool_reporting_it() -> None:  # as datasets' map does: its own error, raised in handling
        try:
            raise KeyboardInterrupt
        finally:
            raise multiprocess.TimeoutError

    for job in (interrupted, pool_reporting_it):
        assert guarded(job) == 130
        assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(multiprocess.TimeoutError):  # a bug stays a traceback
        guarded(lambda: (_ for _ in ()).throw(multiprocess.TimeoutError()))
