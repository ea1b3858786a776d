"""Data identity by content: the cache of a user's files is keyed on their bytes (an edit that
keeps size and mtime is seen), cache folders are shared safely, and a damaged cache is rebuilt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny import tiny_train_config

from transformer.data import cache_folder, corpus
from transformer.data.corpus import file_sha256, read_split
from transformer.data.prepare import prepare_data


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
