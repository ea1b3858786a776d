"""translate: sentences from arguments, a file, or standard input (answered line by line, one
output line per input line), n-best lists, attention plots, and clean failures on bad input."""

from __future__ import annotations

import dataclasses
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import CPU, ONE_THREAD, ROOT, SENTENCES, tiny_assets, write_checkpoint

from transformer.commands.translate import main as translate_main
from transformer.commands.translate import stdin_lines
from transformer.decoding.translator import Translator

SCRIPT = str(ROOT / "scripts" / "translate.py")


@pytest.fixture
def run(tiny_parallel_corpus: dict[str, Path], tmp_path: Path) -> dict:
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    ckpt = write_checkpoint(tmp_path / "last.pt", model, tokenizer, cfg)
    translator = Translator(model, tokenizer, dataclasses.replace(cfg.decode, n_best=1), CPU)
    return {"ckpt": ckpt, "translator": translator, "cfg": cfg}


def _readline(process: subprocess.Popen, timeout: float = 60.0) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "no answer: the output line was not flushed"
    return process.stdout.readline()


@pytest.mark.slow  # scripts/translate.py as a process
def test_stdin_is_answered_line_by_line_then_in_batches(run: dict) -> None:
    cmd = [sys.executable, SCRIPT, str(run["ckpt"])]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
    )
    try:
        process.stdin.write(SENTENCES[0] + "\n")
        process.stdin.flush()
        first = _readline(process)  # answered while standard input is still open
        rest = ["", *SENTENCES[1:], "  "]
        out, err = process.communicate("\n".join(rest) + "\n", timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    expected = run["translator"].translate([SENTENCES[0], *rest])
    assert [first.rstrip("\n"), *out.split("\n")[:-1]] == expected
    assert expected[1] == "" and expected[-1] == ""


@pytest.mark.slow  # scripts/translate.py as a process, one per case
@pytest.mark.parametrize("case", ["corrupt-checkpoint", "latin1-stdin"])
def test_bad_input_exits_2_without_traceback(run: dict, tmp_path: Path, case: str) -> None:
    ckpt, message = run["ckpt"], "not UTF-8"
    if case == "corrupt-checkpoint":
        ckpt, message = tmp_path / "bad.pt", "could not be read"
        ckpt.write_bytes(os.urandom(256))
    latin1 = "Ein Mann fährt Fahrrad.\n".encode("latin-1")
    cmd = [sys.executable, SCRIPT, str(ckpt)]
    done = subprocess.run(cmd, input=latin1, capture_output=True, env=ONE_THREAD, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 2 and message in err and "Traceback" not in err


def test_arguments_with_nbest(run: dict, capsys: pytest.CaptureFixture) -> None:
    argv = [str(run["ckpt"]), *SENTENCES[:3], "--beam-size", "4", "--n-best", "3"]
    assert translate_main(argv) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    decode = dataclasses.replace(run["cfg"].decode, beam_size=4, n_best=3)
    translator = run["translator"]
    expected = Translator(translator.model, translator.tokenizer, decode, CPU)
    for i, hyps in enumerate(expected.translate_nbest(SENTENCES[:3])):
        got = rows[3 * i : 3 * i + 3]
        assert [r[2] for r in got] == [text for text, _ in hyps]
        assert [float(r[1]) for r in got] == pytest.approx([s for _, s in hyps], abs=1e-4)


def test_decode_errors_name_the_flags(run: dict, capsys: pytest.CaptureFixture) -> None:
    argv = [str(run["ckpt"]), "A dog.", "--beam-size", "1", "--n-best", "3"]
    assert translate_main(argv) == 2
    err = capsys.readouterr().err
    assert "--n-best=3 exceeds --beam-size=1; raise --beam-size or lower --n-best" in err
    assert "decode." not in err and "n_best" not in err


def test_input_file_with_attention_plot(
    run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    png = tmp_path / "plots" / "attention.png"
    argv = [str(run["ckpt"]), "--input", str(source), "--attention", str(png), "--layer", "0"]
    assert translate_main(argv) == 0
    assert capsys.readouterr().out.splitlines() == run["translator"].translate(SENTENCES)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_input_file_lines_end_only_at_newlines(
    run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """U+2028, form feed, U+0085 ... inside a line do not split it (str.splitlines would)."""
    lines = ["A man\u2028runs on the street.", "Dog.\x0cA cat.\x85", "A woman walks."]
    source = tmp_path / "in.txt"
    source.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    assert translate_main([str(run["ckpt"]), "--input", str(source)]) == 0
    assert capsys.readouterr().out.split("\n") == [*run["translator"].translate(lines), ""]


def test_long_lines_are_truncated_and_layers_and_ensembles_checked(
    run: dict, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    long_line = " ".join(["a big red dog runs on the street"] * 50)
    assert translate_main([str(run["ckpt"]), long_line, "--beam-size", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert "truncated" in caplog.text
    assert translate_main([str(run["ckpt"]), "A dog.", "--attention", "x.png", "--layer", "5"]) == 2
    assert "--layer 5" in capsys.readouterr().err
    ensemble = ["--ensemble", str(run["ckpt"])]
    assert translate_main([str(run["ckpt"]), "A dog.", *ensemble, "--attention", "x.png"]) == 2
    assert "--attention plots one model's attention; drop --ensemble" in capsys.readouterr().err
    assert translate_main([str(run["ckpt"]), *ensemble, "A dog.", "A cat."]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # sentences after --ensemble CKPT


def test_stdin_lines_groups_what_arrives() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, "eins\r\nzwei\u2028zwei\x0c\n\ndrei ü".encode())
    os.close(write_end)
    try:
        groups = list(stdin_lines(read_end))
    finally:
        os.close(read_end)
    assert groups == [["eins", "zwei\u2028zwei\x0c", ""], ["drei ü"]]
