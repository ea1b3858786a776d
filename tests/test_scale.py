"""Data at scale on small inputs: the streaming reader, the Arrow cache of a user's files, the
seeded SentencePiece sample, Arrow-backed batches, the synthetic corpus, and run folders that keep
their tokenizer settings under a new default."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from transformer.commands import make_corpus
from transformer.config import DataConfig, TokenizerConfig, TrainConfig, TrainRunConfig
from transformer.data import batching, corpus, sampler, synthetic, text_files, tokenizer, vocabulary
from transformer.data.batching import EncodedPairs, collate, pad_sources
from transformer.data.corpus import CorpusError, read_split, split_name
from transformer.data.prepare import prepare_data
from transformer.data.sampler import TokenBatchSampler
from transformer.data.special import PAD_ID


def _files_cfg(folder: Path, cache: Path, **data: object) -> DataConfig:
    settings: dict[str, object] = {
        "source": "files",
        "train_path": f"{folder}/train.{{lang}}",
        "valid_path": f"{folder}/valid.{{lang}}",
        "test_path": f"{folder}/test.{{lang}}",
        "cache_dir": str(cache),
    }
    settings.update(data)
    return DataConfig(**settings)  # type: ignore[arg-type]


def _run_cfg(folder: Path, tmp_path: Path, max_tokens: int, **tokenizer: object) -> TrainRunConfig:
    """A run on the text files in `folder`, with its cache and run folder under `tmp_path`."""
    return TrainRunConfig(
        data=_files_cfg(folder, tmp_path / "cache"),
        tokenizer=TokenizerConfig(vocab_size=64, **tokenizer),  # type: ignore[arg-type]
        train=TrainConfig(max_tokens=max_tokens),
        run_dir=str(tmp_path / "run"),
    )


# --- the streaming reader -------------------------------------------------------------------


def test_blocks_of_lines_match_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Multi-byte characters and lines longer than a block straddle the block boundaries.
    rng = random.Random(0)
    chars = "aé漢\u2028 \r"
    lines = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    text = "\ufeff" + "\n".join(lines)  # a BOM, and no final newline
    path = tmp_path / "t.en.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    monkeypatch.setattr(text_files, "BLOCK_BYTES", 7)
    blocks = list(text_files.iter_lines(path))
    assert len(blocks) > 10  # streamed, not read in one piece
    assert [line for block in blocks for line in block] == lines


def test_utf8_error_names_line_and_byte_in_a_later_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = "".join(f"line {i}\n" for i in range(50)).encode()
    (tmp_path / "t.de").write_bytes(good + b"caf\xe9\n")
    monkeypatch.setattr(text_files, "BLOCK_BYTES", 16)
    expected = rf"t\.de, line 51: invalid UTF-8 .* at byte {len(good) + 3}\)"
    with pytest.raises(CorpusError, match=expected):
        text_files.read_lines(tmp_path / "t.de")


def test_parallel_stream_yields_batches_and_counts_unaligned_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t.en").write_text("".join(f"e{i}\n" for i in range(25)))
    (tmp_path / "t.de").write_text("".join(f"d{i}\n" for i in range(25)))
    monkeypatch.setattr(text_files, "PAIR_BATCH", 10)
    batches = list(text_files.stream_parallel(tmp_path / "t.en", tmp_path / "t.de"))
    assert [len(src) for src, _ in batches] == [10, 10, 5]
    assert batches[2] == (["e20", "e21", "e22", "e23", "e24"], ["d20", "d21", "d22", "d23", "d24"])
    (tmp_path / "t.de").write_text("".join(f"d{i}\n" for i in range(23)))
    with pytest.raises(CorpusError, match=r"t\.en has 25 lines but .*t\.de has 23"):
        list(text_files.stream_parallel(tmp_path / "t.en", tmp_path / "t.de"))


def test_files_stream_into_a_memory_mapped_arrow_cache_with_the_old_identity(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _files_cfg(tiny_parallel_corpus["dir"], tmp_path / "cache")
    monkeypatch.setattr(text_files, "PAIR_BATCH", 64)  # several record batches
    split = read_split(cfg, "train")
    (cache_file,) = split.dataset.cache_files
    assert Path(cache_file["filename"]).parent == tmp_path / "cache" / "pairs"
    src = tiny_parallel_corpus["train.en"].read_text().splitlines()
    tgt = tiny_parallel_corpus["train.de"].read_text().splitlines()
    assert (split.dataset["src"][:], split.dataset["tgt"][:]) == (src, tgt)
    # The identity of the whole-list reader, so existing run folders and caches stay valid.
    digest = hashlib.sha256()
    for side in (src, tgt):
        digest.update("\n".join(side).encode("utf-8") + b"\0")
    assert split.identity == digest.hexdigest()

    def never(*args: object) -> None:
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(corpus, "stream_text_split", never)
    assert read_split(cfg, "train").identity == split.identity  # read back, not re-read
    monkeypatch.undo()
    with tiny_parallel_corpus["train.de"].open("a") as file:
        file.write("\n")  # now unaligned: a changed file is read again
    with pytest.raises(CorpusError, match="not aligned"):
        read_split(cfg, "train")


def test_empty_validation_split_is_a_one_line_error_naming_the_file(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    folder = tiny_parallel_corpus["dir"]
    for lang in ("en", "de"):
        (folder / f"valid.{lang}").write_text("")
    cfg = TrainRunConfig(
        data=_files_cfg(folder, tmp_path / "cache"),
        tokenizer=TokenizerConfig(vocab_size=64),
        run_dir=str(tmp_path / "run"),
    )
    with pytest.raises(CorpusError) as error:
        prepare_data(cfg)
    message = str(error.value)
    assert "\n" not in message and "validation split" in message
    assert str(folder / "valid.en") in message and "data.valid_path" in message


def test_split_names_live_in_one_place() -> None:
    multi30k = DataConfig(valid_split="val", test_split="test_2017_flickr")
    assert [split_name(multi30k, s) for s in ("train", "validation", "test", "val")] == [
        "train", "val", "test_2017_flickr", "val",
    ]  # fmt: skip
    files = DataConfig(source="files", train_path="x", valid_path="y")
    assert split_name(files, "validation") == "validation"


# --- the seeded SentencePiece sample ---------------------------------------------------------


def test_sample_rows_is_seeded_sorted_and_sized() -> None:
    rows = tokenizer.sample_rows(1000, 100)
    assert rows is not None and len(rows) == len(set(rows.tolist())) == 100
    assert (np.diff(rows) > 0).all() and rows.max() < 1000
    np.testing.assert_array_equal(rows, tokenizer.sample_rows(1000, 100))
    assert tokenizer.sample_rows(1000, 0) is None and tokenizer.sample_rows(100, 100) is None


def test_tokenizer_trains_on_the_seeded_sample_and_reproduces_its_bytes(
    tiny_parallel_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tiny_parallel_corpus["train.en"].read_text().splitlines()
    tgt = tiny_parallel_corpus["train.de"].read_text().splitlines()
    seen: list[list[str]] = []
    train_spm = tokenizer.train_spm

    def recording(sentences, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(list(sentences))
        return train_spm(iter(seen[-1]), **kwargs)

    monkeypatch.setattr(tokenizer, "train_spm", recording)
    settings = dict(
        src_lang="en", tgt_lang="de", model_type="unigram", vocab_size=64, joint=True,
        character_coverage=1.0, input_sentence_size=300,
    )  # fmt: skip
    arrow = pa.chunked_array([pa.array(src[:150]), pa.array(src[150:])])  # two chunks
    models = [
        tokenizer.train_tokenizer(src, tgt, **settings).model_files()["spm.model"],
        tokenizer.train_tokenizer(arrow, tgt, **settings).model_files()["spm.model"],
    ]
    assert models[0] == models[1]  # byte-identical: same corpus, same settings
    assert seen[0] == seen[1] and len(seen[0]) == 300  # 300 of the 800 sentences
    assert set(seen[0]) <= set(src) | set(tgt) and set(seen[0]) & set(tgt)
    full = tokenizer.train_tokenizer(src, tgt, **{**settings, "input_sentence_size": 0})
    assert seen[-1] == src + tgt and full.model_files()["spm.model"] != models[0]


def test_an_old_folder_keeps_its_sample_size_under_the_new_default(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    def cfg(size: int | None) -> TrainRunConfig:
        return _run_cfg(tiny_parallel_corpus["dir"], tmp_path, 64, input_sentence_size=size)

    assert vocabulary.resolve_tokenizer_config(cfg(None)).tokenizer.input_sentence_size == (
        vocabulary.DEFAULT_INPUT_SENTENCE_SIZE
    )
    prepare_data(cfg(0))  # a folder from before the default: it records 0 (all sentences)
    assert (
        json.loads((tmp_path / "run" / "tokenizer.json").read_text())["settings"][
            "input_sentence_size"
        ]
        == 0
    )
    assert vocabulary.resolve_tokenizer_config(cfg(None)).tokenizer.input_sentence_size == 0
    assert "reused" in prepare_data(cfg(None)).stats.tokenizer  # no "settings changed"
    with pytest.raises(ValueError, match="trained for en-de with"):
        prepare_data(cfg(100))  # an explicit other value still refuses


# --- Arrow-backed batches --------------------------------------------------------------------


def _rows(n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(4, 60) for _ in range(rng.randint(0, 9))] for _ in range(n)]


def test_arrow_batches_equal_the_list_collate_across_chunks() -> None:
    src, tgt = _rows(200, 1), _rows(200, 2)
    ids = pa.list_(pa.int32())
    chunked = EncodedPairs(
        pa.chunked_array([pa.array(src[i : i + 37], ids) for i in range(0, 200, 37)]),
        pa.chunked_array([pa.array(tgt[i : i + 50], ids) for i in range(0, 200, 50)]),
    )
    rng = random.Random(3)
    for _ in range(20):
        indices = rng.sample(range(200), rng.randint(1, 30))  # any order, across chunks
        got = chunked.collate(indices)
        want = collate([src[i] for i in indices], [tgt[i] for i in indices], indices, PAD_ID)
        for name in ("src_ids", "tgt_in_ids", "tgt_out_ids", "indices"):
            torch.testing.assert_close(getattr(got, name), getattr(want, name))
        assert (got.n_src_tokens, got.n_tgt_tokens) == (want.n_src_tokens, want.n_tgt_tokens)
        assert chunked.rows(indices) == ([src[i] for i in indices], [tgt[i] for i in indices])
    src_lens, tgt_lens = chunked.collated_lengths()
    assert src_lens.dtype == np.int32 and src_lens.tolist() == [len(s) + 1 for s in src]
    assert tgt_lens.tolist() == [len(t) + 1 for t in tgt]


def test_a_prepared_split_stays_memory_mapped_and_batches_from_arrow(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    cfg = _run_cfg(tiny_parallel_corpus["dir"], tmp_path, max_tokens=200)
    train = prepare_data(cfg).splits["train"]
    assert train.cache_files  # read from the Arrow file, not held in memory
    pairs = EncodedPairs.from_dataset(train)
    src_lens, tgt_lens = pairs.collated_lengths()
    sampler = TokenBatchSampler(src_lens, tgt_lens, 200, seed=0)
    seen = []
    for indices in sampler:
        batch = pairs.collate(indices)
        assert batch.src_ids.numel() <= 200 and batch.tgt_in_ids.numel() <= 200
        rows = train.select(indices)
        assert pairs.rows(indices) == (rows["src_ids"], rows["tgt_ids"])
        seen += indices
    assert sorted(seen) == list(range(len(train)))


def test_lengths_come_from_a_file_beside_the_cache_not_the_memory_map(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _run_cfg(tiny_parallel_corpus["dir"], tmp_path, max_tokens=200)
    prepared = prepare_data(cfg)
    for name, split in prepared.splits.items():
        (cache_file,) = split.cache_files
        assert Path(cache_file["filename"] + ".lengths.npy").is_file()
        src, tgt = prepared.lengths[name]
        assert src.dtype == np.int32 and src.tolist() == [len(ids) for ids in split["src_ids"]]
        assert tgt.tolist() == [len(ids) for ids in split["tgt_ids"]]

    def offsets_read(*args: object) -> None:
        raise AssertionError("lengths should come from the .lengths.npy file")

    monkeypatch.setattr(batching, "_list_lengths", offsets_read)
    again = prepare_data(cfg)
    np.testing.assert_array_equal(again.lengths["train"][0], prepared.lengths["train"][0])
    pairs = EncodedPairs.from_dataset(again.splits["train"], again.lengths["train"])
    assert pairs.collated_lengths()[0].tolist() == (prepared.lengths["train"][0] + 1).tolist()


def test_bounds_match_the_row_by_row_greedy_cut() -> None:
    def reference(keys: list[int], max_tokens: int) -> list[tuple[int, int]]:
        bounds, start = [], 0
        for end, key in enumerate(keys):
            if end > start and (end - start + 1) * key > max_tokens:
                bounds.append((start, end))
                start = end
        return bounds + ([(start, len(keys))] if keys else [])

    rng = random.Random(0)
    for _ in range(200):
        keys = sorted(rng.randint(1, 70) for _ in range(rng.randint(0, 300)))
        budget = rng.choice([1, 5, 40, 64, 300, 4096])
        got = [tuple(b) for b in sampler._bounds(np.array(keys), budget).tolist()]
        assert got == reference(keys, budget)


def test_padding_totals_without_lists_equal_padding_stats() -> None:
    rng = random.Random(5)
    src = np.array([rng.randint(2, 50) for _ in range(3000)], dtype=np.int32)
    tgt = np.array([max(2, s + rng.randint(-6, 6)) for s in src], dtype=np.int32)
    sampler = TokenBatchSampler(src, tgt, 1000, seed=2)
    reference = sampler.padding_stats(sampler.epoch_batches(0), src.tolist(), tgt.tolist())
    assert sampler.padding(src, tgt) == reference


def test_pad_sources_is_the_collated_source() -> None:
    src = _rows(6, 4)
    torch.testing.assert_close(pad_sources(src), collate(src, src, list(range(6)), PAD_ID).src_ids)


# --- the synthetic corpus --------------------------------------------------------------------


def test_synthetic_corpus_joins_seeded_random_pairs(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    src, tgt = tiny_parallel_corpus["train.en"], tiny_parallel_corpus["train.de"]
    source, out = f"{src.parent}/train.{{lang}}", f"{tmp_path}/a.{{lang}}.gz"
    make_corpus.main(["--pairs", "2.5k", "--source", source, "--out", out])
    synthetic.write_synthetic_corpus(src, tgt, tmp_path / "b.en", tmp_path / "b.de", 2500)
    a_en = gzip.decompress((tmp_path / "a.en.gz").read_bytes()).decode().splitlines()
    a_de = gzip.decompress((tmp_path / "a.de.gz").read_bytes()).decode().splitlines()
    assert a_en == (tmp_path / "b.en").read_text().splitlines()  # same seed, same corpus
    assert len(a_en) == len(a_de) == 2500
    pairs = dict(zip(src.read_text().splitlines(), tgt.read_text().splitlines(), strict=True))
    joined = {f"{e1} {e2}": f"{pairs[e1]} {pairs[e2]}" for e1 in pairs for e2 in pairs}
    assert all(joined[e] == d for e, d in zip(a_en[:50], a_de[:50], strict=True))
    other = tmp_path / "c.en"
    synthetic.write_synthetic_corpus(src, tgt, other, tmp_path / "c.de", 2500, seed=1)
    assert other.read_text().splitlines() != a_en
    assert synthetic.parse_count("0.1M") == 100_000 and synthetic.parse_count("7") == 7
