"""Data identity by content: the cache of a user's files is keyed on their bytes (an edit that
keeps size and mtime is seen), cache folders are shared safely, and a damaged cache is rebuilt."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny import tiny_assets, tiny_train_config, write_checkpoint, write_tiny_parallel_corpus

from transformer.checkpoint import load_checkpoint
from transformer.commands.evaluate import main as evaluate_main
from transformer.data import cache_folder, corpus
from transformer.data.corpus import file_sha256, read_split, source_record
from transformer.data.prepare import prepare_data
from transformer.evaluation.metrics import compute_metrics
from transformer.training import final_model, trainer
from transformer.training.loop_state import ResumeError


def _same_size_edit(path: Path) -> None:
    """Change one character, keeping the size and the modification time (`touch -r`)."""
    stat = path.stat()
    text = path.read_text("utf-8")
    path.write_text(("X" if text[0] != "X" else "Y") + text[1:], "utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_same_size_edit_with_the_mtime_restored_is_read_again(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, split: str
) -> None:
    cfg = tiny_train_config(tiny_parallel_corpus["dir"], tmp_path / "run").data
    before = read_split(cfg, split)
    path = tiny_parallel_corpus[f"{split}.en"]
    _same_size_edit(path)
    after = read_split(cfg, split)
    assert after.dataset["src"][0] == path.read_text("utf-8").splitlines()[0].strip()
    assert after.identity != before.identity
    assert after.files[str(path)] == file_sha256(path) != before.files[str(path)]


def test_two_processes_filling_one_pairs_cache_do_not_collide(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache" / "pairs" / "files-x.arrow"
    inner_batches = iter([(["a"], ["b"])])

    def outer_batches():  # another writer publishes the same cache while this one writes
        yield ["a"], ["b"]
        corpus._write_pairs(inner_batches, cache, "inner")
        yield ["c"], ["d"]

    corpus._write_pairs(outer_batches(), cache, "outer")
    split = corpus._cached_pairs(cache)
    assert split is not None and split.dataset["src"][:] == ["a", "c"]
    assert sorted(p.name for p in cache.parent.iterdir()) == ["files-x.arrow", "files-x.json"]


@pytest.mark.parametrize("damage", ["truncate arrow", "delete arrow", "empty json"])
def test_a_damaged_pairs_cache_is_read_again(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    cfg = tiny_train_config(tiny_parallel_corpus["dir"], tmp_path / "run").data
    before = read_split(cfg, "train").dataset["src"][:]
    (arrow,) = (tmp_path / "cache" / "pairs").glob("*.arrow")
    if damage == "truncate arrow":
        arrow.write_bytes(arrow.read_bytes()[:100])
    elif damage == "delete arrow":
        arrow.unlink()
    else:
        arrow.with_suffix(".json").write_text("")
    after = read_split(cfg, "train")
    assert after.dataset["src"][:] == before


@pytest.mark.parametrize("damage", ["truncate", "delete", "truncate lengths"])
def test_a_damaged_encoded_cache_is_encoded_again(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    cfg = tiny_train_config(tiny_parallel_corpus["dir"], tmp_path / "run")
    before = prepare_data(cfg).splits["train"]["src_ids"][:]
    encoded = tmp_path / "cache" / "encoded"
    (arrow,) = (p for p in encoded.glob("train-*.arrow"))
    target = Path(f"{arrow}.lengths.npy") if damage == "truncate lengths" else arrow
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:64])
    assert prepare_data(cfg).splits["train"]["src_ids"][:] == before


def test_temporary_files_of_a_killed_run_are_removed_unless_the_cache_is_in_use(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_train_config(tiny_parallel_corpus["dir"], tmp_path / "run")
    cache = tmp_path / "cache"
    leftovers = [cache / "encoded" / "tmpab12cd", cache / "pairs" / ".files-x.arrow.1234.tmp"]
    with cache_folder.cache_in_use(cache):  # another process preparing: its files are live
        for path in leftovers:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"partial")
        prepare_data(cfg)
        assert all(path.exists() for path in leftovers)
    prepare_data(cfg)
    assert not any(path.exists() for path in leftovers)


@pytest.mark.slow
def test_a_fine_tune_refuses_to_resume_on_a_changed_corpus(tmp_path: Path) -> None:
    base_corpus = write_tiny_parallel_corpus(tmp_path / "base_corpus")
    trainer.train(tiny_train_config(base_corpus["dir"], tmp_path / "base", max_updates=5))
    corpus = write_tiny_parallel_corpus(tmp_path / "corpus")
    tuned = tmp_path / "tuned"

    def fine_tune(updates: int) -> dict:
        cfg = tiny_train_config(
            corpus["dir"], tuned, max_updates=updates, init_from=str(tmp_path / "base")
        )
        return trainer.train(cfg)

    assert fine_tune(5)["step"] == 5
    before = file_sha256(corpus["train.en"])
    _same_size_edit(corpus["train.en"])
    with pytest.raises(ResumeError, match="trained on other data") as error:
        fine_tune(10)
    message = str(error.value)
    assert str(corpus["train.en"]) in message
    assert before[:16] in message and file_sha256(corpus["train.en"])[:16] in message
    stored = load_checkpoint(tuned / "checkpoints" / "last.pt")["data_sources"]["train"]
    assert stored["files"][str(corpus["train.en"])] == before  # the path as given, its hash


def test_evaluate_names_the_files_it_read_and_refuses_other_files_at_the_same_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    corpus = write_tiny_parallel_corpus(tmp_path / "here" / "corpus")
    model, tokenizer, cfg = tiny_assets(corpus)
    cfg.data = dataclasses.replace(
        cfg.data, test_path="corpus/test.{lang}", cache_dir=str(tmp_path / "cache")
    )  # relative, as a user types it
    monkeypatch.chdir(tmp_path / "here")
    ckpt = write_checkpoint(tmp_path / "run" / "last.pt", model, tokenizer, cfg)
    state = torch.load(ckpt, weights_only=True)
    state["data_sources"] = {"test": source_record(read_split(cfg.data, "test"))}
    torch.save(state, ckpt)
    out = ["--out-dir", str(tmp_path / "eval"), "--max-sentences", "2"]
    assert evaluate_main([str(ckpt), *out]) == 0
    (report,) = (tmp_path / "eval").glob("*.json")
    files = json.loads(report.read_text("utf-8"))["data_files"]
    test_en = corpus["test.en"].resolve()
    assert files[str(test_en)] == file_sha256(test_en)
    other = write_tiny_parallel_corpus(tmp_path / "elsewhere" / "corpus")
    _same_size_edit(other["test.en"])
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert evaluate_main([str(ckpt), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corpus/test.en has sha256" in err
    assert file_sha256(test_en)[:16] in err and file_sha256(other["test.en"])[:16] in err


def test_the_test_split_of_text_files_is_logged_by_its_own_name(
    tiny_parallel_corpus: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = tiny_train_config(tiny_parallel_corpus["dir"], tmp_path / "run")
    metrics = compute_metrics(["a b"], ["a b"])
    monkeypatch.setattr(final_model, "evaluate_split", lambda *args: metrics)
    run = SimpleNamespace(
        cfg=cfg, prepared=SimpleNamespace(splits={"test": None}, tokenizer=None),
        device=None, log=SimpleNamespace(scalars=lambda *args: None, event=lambda *args: None),
        counters=SimpleNamespace(update=3),
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger=final_model.__name__):
        final_model.evaluate_test(run, None, "final.pt")
    assert "test (test, final.pt)" in caplog.text and "flickr" not in caplog.text
