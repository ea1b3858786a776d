"""prepare_data: tokenizer trained once per run folder, cached encodings, length filter, stats."""

from __future__ import annotations

from pathlib import Path

import pytest

from transformer.config import DataConfig, TokenizerConfig, TrainConfig, TrainRunConfig
from transformer.data import vocabulary
from transformer.data.corpus import CorpusError
from transformer.data.prepare import format_stats, pair_lengths, prepare_data
from transformer.data.tokenizer import Tokenizer


def _run_cfg(corpus: dict[str, Path], tmp_path: Path, **data: object) -> TrainRunConfig:
    folder = corpus["dir"]
    settings: dict[str, object] = {
        "source": "files",
        "train_path": f"{folder}/train.{{lang}}",
        "valid_path": f"{folder}/valid.{{lang}}",
        "test_path": f"{folder}/test.{{lang}}",
        "cache_dir": str(tmp_path / "data"),
    }
    settings.update(data)
    return TrainRunConfig(
        data=DataConfig(**settings),  # type: ignore[arg-type]
        tokenizer=TokenizerConfig(vocab_size=64),
        train=TrainConfig(max_tokens=64),
        run_dir=str(tmp_path / "run"),
    )


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("should have come from the cache")


def test_prepare_encodes_every_split(tiny_parallel_corpus: dict[str, Path], tmp_path: Path) -> None:
    prepared = prepare_data(_run_cfg(tiny_parallel_corpus, tmp_path))
    assert set(prepared.splits) == {"train", "validation", "test"}
    for name, split in prepared.splits.items():
        assert split.column_names == ["src", "tgt", "src_ids", "tgt_ids"]
        assert split["src_ids"][:] == prepared.tokenizer.encode_src(split["src"][:])
        assert split["tgt_ids"][:] == prepared.tokenizer.encode_tgt(split["tgt"][:])
        src_lens, _ = pair_lengths(split)
        stats = prepared.stats.splits[name]
        assert (stats.pairs, stats.src_tokens, stats.src_len_max) == (
            len(split),
            sum(src_lens),
            max(src_lens),
        )
    assert (tmp_path / "run" / "spm.model").is_file()
    assert Tokenizer.load(tmp_path / "run").fingerprint == prepared.tokenizer.fingerprint
    assert 0.0 <= prepared.stats.train_padding < 0.5 and prepared.stats.train_batches > 0
    text = format_stats(prepared.stats)
    assert f"{prepared.stats.splits['train'].pairs:,}" in text and "validation" in text


def test_second_run_reuses_tokenizer_and_encodings(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _run_cfg(tiny_parallel_corpus, tmp_path)
    first = prepare_data(cfg)
    monkeypatch.setattr(vocabulary, "train_tokenizer", _never)
    monkeypatch.setattr(Tokenizer, "encode_src", _never)
    monkeypatch.setattr(Tokenizer, "encode_tgt", _never)
    second = prepare_data(cfg)
    cache = (tmp_path / "data" / "encoded").resolve()
    for name, split in second.splits.items():
        assert split["src_ids"] == first.splits[name]["src_ids"]
        files = [Path(f["filename"]).resolve() for f in split.cache_files]
        assert files and all(f.parent == cache for f in files)
    assert "reused" in second.stats.tokenizer and "trained" in first.stats.tokenizer


def test_changed_filter_settings_encode_again(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare_data(_run_cfg(tiny_parallel_corpus, tmp_path))
    calls = []
    encode = Tokenizer.encode_src
    monkeypatch.setattr(Tokenizer, "encode_src", lambda self, t: calls.append(1) or encode(self, t))
    prepare_data(_run_cfg(tiny_parallel_corpus, tmp_path, max_tokens_per_side=5))
    assert calls  # train's cache key includes the filter, validation/test are unaffected
    assert len(list((tmp_path / "data" / "encoded").glob("train-*.arrow"))) == 2
    assert len(list((tmp_path / "data" / "encoded").glob("test-*.arrow"))) == 1


def test_length_filter_on_train_only(tiny_parallel_corpus: dict[str, Path], tmp_path: Path) -> None:
    full = prepare_data(_run_cfg(tiny_parallel_corpus, tmp_path / "a", max_tokens_per_side=1000))
    limit, ratio = 6, 1.5
    filtered = prepare_data(
        _run_cfg(
            tiny_parallel_corpus,
            tmp_path / "b",
            max_tokens_per_side=limit,
            max_length_ratio=ratio,
        )
    )
    src, tgt = pair_lengths(full.splits["train"])
    keep = [
        i
        for i, (s, t) in enumerate(zip(src, tgt, strict=True))
        if s <= limit and t <= limit and max(s, t) <= ratio * max(min(s, t), 1)
    ]
    assert 0 < len(keep) < len(src)
    assert filtered.splits["train"]["src"] == [full.splits["train"]["src"][i] for i in keep]
    assert filtered.stats.splits["train"].dropped_length == len(src) - len(keep)
    assert len(filtered.splits["test"]) == len(full.splits["test"])  # not filtered
    assert filtered.stats.splits["test"].dropped_length == 0


def test_reused_tokenizer_must_match_the_config(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    cfg = _run_cfg(tiny_parallel_corpus, tmp_path)
    prepare_data(cfg)
    cfg.tokenizer = TokenizerConfig(vocab_size=48)
    with pytest.raises(ValueError, match=r"vocab_size.*64.*48.*another run folder"):
        prepare_data(cfg)


def test_reused_tokenizer_must_come_from_the_same_training_corpus(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    cfg = _run_cfg(tiny_parallel_corpus, tmp_path)
    first = prepare_data(cfg)
    assert len(first.tokenizer.settings["train_corpus"]) == 64  # a sha256 of the split
    assert Tokenizer.load(tmp_path / "run").settings == first.tokenizer.settings
    for lang in ("en", "de"):  # same path, other contents
        path = tiny_parallel_corpus[f"train.{lang}"]
        path.write_text(path.read_text("utf-8") + "One more line.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"another training corpus.*train\.en.*delete") as error:
        prepare_data(cfg)
    assert str(tmp_path / "run") in str(error.value)


def test_empty_pairs_reach_the_statistics(tmp_path: Path) -> None:
    words = "the cat sat on a mat with one red hat".split()
    src = [" ".join(words[i % 10 :] + words[: i % 10]) for i in range(60)]
    (tmp_path / "t.en").write_text("\n".join(src[:30] + [""] + src[30:]) + "\n")
    (tmp_path / "t.de").write_text("\n".join(src[:30] + ["x"] + src[30:]) + "\n")
    cfg = TrainRunConfig(
        data=DataConfig(
            source="files",
            train_path=f"{tmp_path}/t",
            valid_path=f"{tmp_path}/t",
            cache_dir=str(tmp_path / "data"),
        ),
        tokenizer=TokenizerConfig(vocab_size=32),
        run_dir=str(tmp_path / "run"),
    )
    stats = prepare_data(cfg).stats
    assert stats.splits["train"].dropped_empty == stats.splits["validation"].dropped_empty == 1
    assert stats.splits["train"].pairs == 60 and "test" not in stats.splits


def test_parallel_encoding_matches_serial(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    serial = prepare_data(_run_cfg(tiny_parallel_corpus, tmp_path / "a"))
    parallel = prepare_data(_run_cfg(tiny_parallel_corpus, tmp_path / "b", num_proc=2))
    assert parallel.tokenizer.fingerprint == serial.tokenizer.fingerprint
    assert parallel.splits["train"]["tgt_ids"] == serial.splits["train"]["tgt_ids"]


def test_a_filter_that_drops_everything_is_an_error(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(CorpusError, match="dropped all 400 training pairs.*max_tokens_per_side"):
        prepare_data(_run_cfg(tiny_parallel_corpus, tmp_path, max_tokens_per_side=1))
