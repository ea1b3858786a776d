"""evaluate: decodes a split or files with a checkpoint, writes hypotheses and a report whose
metrics match the hypotheses, averages checkpoints, and fails cleanly on bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import CPU, ONE_THREAD, ROOT, tiny_assets, write_checkpoint

from transformer.checkpoint import load_for_inference
from transformer.commands.evaluate import main as evaluate_main
from transformer.data.text_files import read_lines
from transformer.decoding.ensemble import Ensemble
from transformer.decoding.translator import Translator
from transformer.evaluation.metrics import compute_metrics


@pytest.fixture
def run(tiny_parallel_corpus: dict[str, Path], tmp_path: Path) -> dict:
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    ckpt = write_checkpoint(tmp_path / "ckpts" / "last.pt", model, tokenizer, cfg)
    return {
        "model": model,
        "tokenizer": tokenizer,
        "cfg": cfg,
        "ckpt": ckpt,
        "corpus": tiny_parallel_corpus,
        "out": tmp_path / "eval",
    }


def _report(out_dir: Path) -> dict:
    (path,) = out_dir.glob("*.json")
    return json.loads(path.read_text("utf-8"))


def test_files_give_hypotheses_and_a_matching_report(
    run: dict, capsys: pytest.CaptureFixture
) -> None:
    src, ref = run["corpus"]["test.en"], run["corpus"]["test.de"]
    argv = [str(run["ckpt"]), "--src", str(src), "--ref", str(ref), "--out-dir", str(run["out"])]
    assert evaluate_main([*argv, "--beam-size", "2"]) == 0
    report = _report(run["out"])
    hyps = read_lines(Path(report["hypotheses"]))
    decode = dataclasses.replace(run["cfg"].decode, beam_size=2, n_best=1)
    translator = Translator(run["model"], run["tokenizer"], decode, CPU)
    assert hyps == translator.translate(read_lines(src))
    assert report["metrics"] == compute_metrics(hyps, read_lines(ref)).to_dict()
    assert report["decode"]["beam_size"] == 2 and report["n_sentences"] == 40
    out = capsys.readouterr().out
    assert "BLEU = " in out and report["metrics"]["bleu_signature"] in out and "chrF = " in out


@pytest.mark.slow  # scripts/evaluate.py as a process
def test_script_decodes_the_checkpoints_test_split(run: dict) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(run["ckpt"])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    report = _report(run["ckpt"].parent / "eval")
    assert report["data"] == "test" and report["n_sentences"] == 40
    assert f"BLEU = {report['metrics']['bleu']:.2f}" in done.stdout


def _perturbed_copy(run: dict, path: Path, seed: int) -> Path:
    model, tokenizer, cfg = tiny_assets(run["corpus"])
    torch.manual_seed(seed)
    model.load_state_dict(run["model"].state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return write_checkpoint(path, model, tokenizer, cfg)


@pytest.mark.parametrize("mode", ["--average", "--average-last"])
def test_averaged_checkpoints_decode_like_the_averaged_weights(run: dict, mode: str) -> None:
    folder = run["ckpt"].parent
    others = [_perturbed_copy(run, folder / f"checkpoint_0000000{i}.pt", i) for i in (1, 2)]
    args = [*map(str, others)] if mode == "--average" else ["2"]
    src, ref = run["corpus"]["test.en"], run["corpus"]["test.de"]
    argv = [str(run["ckpt"]), "--src", str(src), "--ref", str(ref), "--out-dir", str(run["out"])]
    assert evaluate_main([*argv, mode, *args]) == 0
    report = _report(run["out"])
    averaged = [run["ckpt"], *others] if mode == "--average" else others
    states = [torch.load(path, weights_only=True)["model"] for path in averaged]
    model = run["model"]
    model.load_state_dict({key: sum(s[key] for s in states) / len(states) for key in states[0]})
    decode = dataclasses.replace(run["cfg"].decode, n_best=1)
    expected = Translator(model, run["tokenizer"], decode, CPU).translate(read_lines(src))
    assert read_lines(Path(report["hypotheses"])) == expected
    assert report["averaged"] == [str(p) for p in averaged]


@pytest.mark.slow  # four full decodes of the test split, ensembles among them
def test_an_ensemble_decodes_like_its_members_together(run: dict) -> None:
    other = _perturbed_copy(run, run["ckpt"].parent / "other.pt", seed=3)
    src, ref = run["corpus"]["test.en"], run["corpus"]["test.de"]
    argv = [str(run["ckpt"]), "--src", str(src), "--ref", str(ref), "--out-dir", str(run["out"])]
    assert evaluate_main([*argv, "--ensemble", str(other)]) == 0
    other.rename(other.parent / "final.pt")  # a run folder names its final.pt in the report
    assert evaluate_main([*argv, "--ensemble", str(other.parent)]) == 0
    report = _report(run["out"])
    member, _, _ = load_for_inference(other.parent / "final.pt", CPU)
    decode = dataclasses.replace(run["cfg"].decode, n_best=1)
    ensemble = Translator(Ensemble([run["model"], member]), run["tokenizer"], decode, CPU)
    hyps = read_lines(Path(report["hypotheses"]))
    assert hyps == ensemble.translate(read_lines(src))
    alone = Translator(run["model"], run["tokenizer"], decode, CPU)
    assert hyps != alone.translate(read_lines(src))  # the second member changed the outputs
    assert report["ensemble"] == [str(other.parent / "final.pt")]
    assert report["hypotheses"].endswith(".ens2.hyp.txt")


def test_ensemble_and_average_members_need_the_same_tokenizer(
    run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    reversed_direction = tmp_path / "de-en.pt"
    state = torch.load(run["ckpt"], weights_only=True)
    state["tokenizer"]["src_lang"], state["tokenizer"]["tgt_lang"] = "de", "en"
    torch.save(state, reversed_direction)
    argv = [str(run["ckpt"]), "--src", str(run["corpus"]["test.en"])]
    argv += ["--ref", str(run["corpus"]["test.de"]), "--out-dir", str(run["out"])]
    assert evaluate_main([*argv, "--ensemble", str(reversed_direction)]) == 2
    err = capsys.readouterr().err
    assert f"{reversed_direction}: its vocabulary or direction (de-en) differs" in err
    assert evaluate_main([*argv, "--average", str(reversed_direction)]) == 2  # the same check
    err = capsys.readouterr().err
    assert f"{reversed_direction}: its vocabulary or direction (de-en) differs" in err
    assert not run["out"].exists()
    assert evaluate_main([*argv, "--ensemble", str(run["ckpt"]), "--average-last", "1"]) == 2
    assert "--ensemble does not combine with --average" in capsys.readouterr().err


def test_files_split_only_at_newlines(run: dict, tmp_path: Path) -> None:
    """A U+2028 inside a source line keeps sources and references aligned (40 each)."""
    lines, src = read_lines(run["corpus"]["test.en"]), tmp_path / "src.en"
    src.write_text("\n".join([lines[0] + "\u2028" + lines[1], *lines[1:]]) + "\n", "utf-8")
    ref = run["corpus"]["test.de"]
    argv = [str(run["ckpt"]), "--src", str(src), "--ref", str(ref), "--out-dir", str(run["out"])]
    assert evaluate_main(argv) == 0
    report = _report(run["out"])
    assert report["n_sentences"] == 40 == len(read_lines(Path(report["hypotheses"])))


def test_bad_inputs_give_a_message_and_status_2(
    run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    latin1 = tmp_path / "latin1.de"
    latin1.write_bytes("Ein Mann fährt Fahrrad.\n".encode("latin-1"))
    no_vocab = tmp_path / "no_vocab.pt"
    state = torch.load(run["ckpt"], weights_only=True)
    del state["tokenizer"]
    torch.save(state, no_vocab)
    src = str(run["corpus"]["test.en"])
    cases = {
        "does not exist": [str(tmp_path / "missing.pt")],
        "without final.pt, best.pt or last.pt": [str(tmp_path)],
        "lacks tokenizer": [str(no_vocab)],
        "invalid UTF-8": [str(run["ckpt"]), "--src", src, "--ref", str(latin1)],
        "not 'test_2099'": [str(run["ckpt"]), "--split", "test_2099"],
    }
    for message, argv in cases.items():
        assert evaluate_main(argv) == 2, message
        assert message in capsys.readouterr().err
    assert evaluate_main([str(run["ckpt"]), "--src", src]) == 2  # a usage error
    assert "--src and --ref go together" in capsys.readouterr().err


@pytest.mark.slow  # real Multi30k test sets
@pytest.mark.parametrize("split", ["test_2016_flickr", "test_2017_flickr"])
def test_multi30k_test_sets(
    run: dict, multi30k_dir: Path, split: str, capsys: pytest.CaptureFixture
) -> None:
    model, tokenizer, cfg = run["model"], run["tokenizer"], run["cfg"]
    data = dataclasses.replace(
        cfg.data, source="multi30k", src_lang="en", tgt_lang="de", multi30k_dir=None
    )
    cfg = dataclasses.replace(cfg, data=data)
    ckpt = write_checkpoint(run["ckpt"].parent / "m30k.pt", model, tokenizer, cfg)
    argv = [str(ckpt), "--split", split, "--multi30k-dir", str(multi30k_dir), "--max-sentences"]
    assert evaluate_main([*argv, "20", "--out-dir", str(run["out"])]) == 0
    report = _report(run["out"])
    assert report["data"] == split and report["n_sentences"] == 20
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in capsys.readouterr().out


def test_a_run_folder_is_scored_with_its_final_pt(run: dict) -> None:
    """final.pt (written at the end of training) names the model it holds in the report."""
    state = torch.load(run["ckpt"], weights_only=True)
    state["description"] = "average of 2 checkpoints (updates 10, 12)"
    final = run["ckpt"].parent / "final.pt"
    torch.save(state, final)
    assert evaluate_main([str(run["ckpt"].parent), "--out-dir", str(run["out"])]) == 0
    report = _report(run["out"])
    assert report["checkpoint"] == str(final)
    assert report["description"] == state["description"]


def test_lengths_are_checked_before_max_sentences_and_empty_input_is_named(
    run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src, ref = run["corpus"]["test.en"], run["corpus"]["test.de"]
    short_ref = tmp_path / "short.de"
    short_ref.write_text("\n".join(read_lines(ref)[:-1]) + "\n", "utf-8")
    empty = tmp_path / "empty.en"
    empty.write_text("", "utf-8")
    cases = {
        f"{src} has 40 lines but {short_ref} has 39": ["--src", str(src), "--ref", str(short_ref)],
        f"{empty}: no sentences to score": ["--src", str(empty), "--ref", str(ref)],
    }
    for message, files in cases.items():
        argv = [str(run["ckpt"]), *files, "--max-sentences", "5", "--out-dir", str(run["out"])]
        assert evaluate_main(argv) == 2, message
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not run["out"].exists()
