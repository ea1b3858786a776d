"""Corpus sources (text files, TSV, JSONL, hub datasets, Multi30k mirror/download) and bad input."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
from pathlib import Path

import datasets
import pytest

from transformer.config import DataConfig
from transformer.data import multi30k
from transformer.data.corpus import CorpusError, load_corpus, load_split, read_split


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _files_cfg(corpus: dict[str, Path], **overrides: object) -> DataConfig:
    folder = corpus["dir"]
    settings: dict[str, object] = {
        "source": "files",
        "train_path": f"{folder}/train.{{lang}}",
        "valid_path": f"{folder}/valid",  # prefix form: ".<lang>" is appended
        "test_path": f"{folder}/test.{{lang}}",
    }
    settings.update(overrides)
    return DataConfig(**settings)  # type: ignore[arg-type]


def test_parallel_files_in_both_directions(tiny_parallel_corpus: dict[str, Path]) -> None:
    corpus = load_corpus(_files_cfg(tiny_parallel_corpus))
    assert set(corpus) == {"train", "validation", "test"}
    assert corpus["train"]["src"] == _lines(tiny_parallel_corpus["train.en"])
    assert corpus["validation"]["tgt"] == _lines(tiny_parallel_corpus["valid.de"])
    reverse = load_split(_files_cfg(tiny_parallel_corpus, src_lang="de", tgt_lang="en"), "test")
    assert reverse["src"] == corpus["test"]["tgt"] and reverse["tgt"] == corpus["test"]["src"]


def test_gzip_tsv_and_jsonl_give_the_same_pairs(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    en, de = _lines(tiny_parallel_corpus["train.en"]), _lines(tiny_parallel_corpus["train.de"])
    for lang, lines in (("en", en), ("de", de)):
        with gzip.open(tmp_path / f"train.{lang}.gz", "wt", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
    (tmp_path / "train.tsv").write_text("".join(f"{e}\t{d}\n" for e, d in zip(en, de, strict=True)))
    records = [
        {"en": e, "de": d} if i % 2 else {"translation": {"de": d, "en": e}}
        for i, (e, d) in enumerate(zip(en, de, strict=True))
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for file_format, path in (
        ("parallel", f"{tmp_path}/train.{{lang}}.gz"),
        ("tsv", str(tmp_path / "train.tsv")),
        ("jsonl", str(tmp_path / "train.jsonl")),
    ):
        cfg = _files_cfg(tiny_parallel_corpus, file_format=file_format, train_path=path)
        split = load_split(cfg, "train")
        assert (split["src"], split["tgt"]) == (en, de), file_format


def test_only_newline_splits_lines(tmp_path: Path) -> None:
    # U+2028 and U+0085 are line breaks to str.splitlines; inside a sentence they must not shift
    # the alignment of the two files.
    (tmp_path / "c.en").write_text("one\u2028still one\nsecond\n", encoding="utf-8")
    (tmp_path / "c.de").write_text("eins\x85noch eins\nzweite\n", encoding="utf-8")
    split = load_split(DataConfig(source="files", train_path=f"{tmp_path}/c"), "train")
    assert split["tgt"] == ["eins\x85noch eins", "zweite"]


def test_missing_file_names_path_and_key(tiny_parallel_corpus: dict[str, Path]) -> None:
    cfg = _files_cfg(tiny_parallel_corpus, valid_path="/nowhere/dev.{lang}")
    with pytest.raises(CorpusError, match=r"/nowhere/dev.en.*data.valid_path"):
        load_split(cfg, "validation")


def test_unaligned_files_name_both_files_and_counts(tmp_path: Path) -> None:
    (tmp_path / "t.en").write_text("a\nb\nc\n")
    (tmp_path / "t.de").write_text("x\ny\n")
    with pytest.raises(CorpusError) as error:
        load_split(DataConfig(source="files", train_path=f"{tmp_path}/t"), "train")
    assert all(part in str(error.value) for part in ("t.en", "3 lines", "t.de", "has 2"))


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "t.en").write_text("a\nb\nc\n")
    (tmp_path / "t.de").write_bytes(b"x\ny\ncaf\xe9\n")
    with pytest.raises(CorpusError, match=r"t\.de, line 3: invalid UTF-8"):
        load_split(DataConfig(source="files", train_path=f"{tmp_path}/t"), "train")


def test_empty_lines_are_dropped_counted_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "t.en").write_text("a\n\nc\nd\n")
    (tmp_path / "t.de").write_text("w\nx\n  \nz\n")
    with caplog.at_level(logging.WARNING):
        split = read_split(DataConfig(source="files", train_path=f"{tmp_path}/t"), "train")
    assert split.n_empty == 2
    assert (split.dataset["src"], split.dataset["tgt"]) == (["a", "d"], ["w", "z"])
    assert "Dropped 2 of 4 pairs" in caplog.text and "t.en" in caplog.text


def test_malformed_tsv_and_jsonl_lines(tmp_path: Path) -> None:
    (tmp_path / "c.tsv").write_text("a\tb\nno tab here\n")
    cfg = DataConfig(source="files", file_format="tsv", train_path=str(tmp_path / "c.tsv"))
    with pytest.raises(CorpusError, match=r"c\.tsv, line 2: expected 2 tab-separated"):
        load_split(cfg, "train")
    (tmp_path / "c.jsonl").write_text('{"en": "a", "de": "b"}\n{"en": "a", "fr": "b"}\n')
    cfg = DataConfig(source="files", file_format="jsonl", train_path=str(tmp_path / "c.jsonl"))
    with pytest.raises(CorpusError, match=r"c\.jsonl, line 2: .*'de'"):
        load_split(cfg, "train")


def test_files_splits_and_optional_test(tiny_parallel_corpus: dict[str, Path]) -> None:
    cfg = _files_cfg(tiny_parallel_corpus, test_path=None)
    assert set(load_corpus(cfg)) == {"train", "validation"}
    with pytest.raises(CorpusError, match="data.test_path"):
        load_split(cfg, "test")
    with pytest.raises(CorpusError, match="has the splits train, validation, test"):
        load_split(cfg, "test_2017_flickr")


def _hub_folder(folder: Path, corpus: dict[str, Path]) -> Path:
    """A local dataset folder with the hub's translation schema, one JSON-lines file per split."""
    folder.mkdir()
    for split, name in (("train", "train"), ("valid", "validation"), ("test", "test")):
        en, de = _lines(corpus[f"{split}.en"]), _lines(corpus[f"{split}.de"])
        rows = [{"translation": {"de": d, "en": e}} for e, d in zip(en, de, strict=True)]
        rows.append({"translation": {"de": "", "en": "orphan"}})
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_hub_dataset_through_load_dataset(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _hub_folder(tmp_path / "hub", tiny_parallel_corpus)
    loads, load_dataset = [], datasets.load_dataset

    def counted_load(*args: object, **kwargs: object) -> datasets.DatasetDict:
        loads.append(args)
        return load_dataset(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", counted_load)
    cfg = DataConfig(
        source="hf",
        hf_path=str(folder),
        src_lang="de",
        tgt_lang="en",
        valid_split="validation",
        test_split="test",
        cache_dir=str(tmp_path / "data"),
    )
    corpus = load_corpus(cfg)
    assert len(loads) == 1  # three splits from one load
    assert corpus["train"]["src"] == _lines(tiny_parallel_corpus["train.de"])
    assert corpus["test"]["tgt"] == _lines(tiny_parallel_corpus["test.en"])
    assert read_split(cfg, "validation").n_empty == 1
    assert (tmp_path / "data" / "hf").is_dir()  # the hub cache lives under data.cache_dir
    with pytest.raises(CorpusError, match=r"no split 'val'; it has train, validation, test"):
        load_split(cfg, "val")
    with pytest.raises(CorpusError, match="no language fr; it has de, en"):
        load_split(dataclasses.replace(cfg, src_lang="fr"), "train")


def test_hub_dataset_saved_to_disk(tiny_parallel_corpus: dict[str, Path], tmp_path: Path) -> None:
    en, de = _lines(tiny_parallel_corpus["test.en"]), _lines(tiny_parallel_corpus["test.de"])
    rows = {"translation": [{"en": e, "de": d} for e, d in zip(en, de, strict=True)]}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(
        tmp_path / "saved"
    )
    cfg = DataConfig(
        source="hf", hf_path=str(tmp_path / "saved"), test_split="test", cache_dir=str(tmp_path)
    )
    split = load_split(cfg, "test")
    assert (split["src"], split["tgt"]) == (en, de)


@pytest.fixture
def fake_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder shaped like the Multi30k release (3 pairs per file), its sums patched in."""
    folder = tmp_path / "release"
    folder.mkdir()
    for split, langs in multi30k.SPLITS.items():
        for lang in langs:
            path = folder / f"{split}.{lang}.gz"
            path.write_bytes(
                gzip.compress(f"{split} {lang} 1\n{split} {lang} 2\n{lang} 3\n".encode())
            )
            monkeypatch.setitem(multi30k.SHA256, path.name, multi30k.sha256_of(path))
    monkeypatch.delenv(multi30k.MULTI30K_ENV, raising=False)
    return folder


def test_multi30k_from_a_mirror_in_config_or_environment(
    fake_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = DataConfig(src_lang="fr", tgt_lang="cs", multi30k_dir=str(fake_release))
    corpus = load_corpus(cfg)
    assert corpus["validation"]["src"][0] == "val fr 1"
    assert corpus["test"]["tgt"] == ["test_2016_flickr cs 1", "test_2016_flickr cs 2", "cs 3"]
    monkeypatch.setenv(multi30k.MULTI30K_ENV, str(fake_release))
    split = load_split(
        DataConfig(src_lang="de", tgt_lang="en", cache_dir=str(tmp_path)), "test_2017_flickr"
    )
    assert split["src"][1] == "test_2017_flickr de 2"
    assert not (tmp_path / "multi30k").exists()  # nothing downloaded


def test_multi30k_unknown_language_or_split(fake_release: Path) -> None:
    with pytest.raises(CorpusError, match="no split 'test_2017_flickr' for cs-en"):
        load_split(
            DataConfig(src_lang="cs", tgt_lang="en", multi30k_dir=str(fake_release)),
            "test_2017_flickr",
        )
    with pytest.raises(CorpusError, match="no language 'ja'"):
        load_split(DataConfig(src_lang="ja", multi30k_dir=str(fake_release)), "train")
    with pytest.raises(CorpusError, match="no split 'dev'"):
        load_split(DataConfig(valid_split="dev", multi30k_dir=str(fake_release)), "validation")


def test_multi30k_mirror_file_with_a_wrong_checksum(fake_release: Path) -> None:
    path = fake_release / "val.de.gz"
    path.write_bytes(gzip.compress(b"tampered\n"))
    with pytest.raises(CorpusError, match=r"val\.de\.gz has sha256 [0-9a-f]{64}, but"):
        load_split(DataConfig(multi30k_dir=str(fake_release)), "validation")


def test_multi30k_download_once_into_the_cache(
    fake_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multi30k, "MULTI30K_URL", fake_release.as_uri())
    cfg = DataConfig(src_lang="en", tgt_lang="de", cache_dir=str(tmp_path / "data"))
    first = load_split(cfg, "train")
    cache = tmp_path / "data" / "multi30k"
    assert sorted(p.name for p in cache.iterdir()) == ["train.de.gz", "train.en.gz"]
    monkeypatch.setattr(multi30k, "MULTI30K_URL", (tmp_path / "offline").as_uri())
    assert load_split(cfg, "train")["tgt"] == first["tgt"] == ["train de 1", "train de 2", "de 3"]


def test_multi30k_download_with_a_wrong_checksum_is_deleted(
    fake_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake_release / "val.en.gz").write_bytes(gzip.compress(b"corrupted\n"))
    monkeypatch.setattr(multi30k, "MULTI30K_URL", fake_release.as_uri())
    with pytest.raises(CorpusError) as error:
        load_split(DataConfig(cache_dir=str(tmp_path / "data")), "validation")
    message = str(error.value)
    assert "Checksum mismatch" in message and "val.en.gz" in message
    assert (
        multi30k.SHA256["val.en.gz"] in message
        and multi30k.sha256_of(fake_release / "val.en.gz") in message
    )
    assert list((tmp_path / "data" / "multi30k").iterdir()) == []  # no temp file, no bad file


def test_multi30k_nowhere_to_be_found_says_where_it_looked(
    fake_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multi30k, "MULTI30K_URL", (tmp_path / "offline").as_uri())
    with pytest.raises(CorpusError) as error:
        load_split(DataConfig(cache_dir=str(tmp_path / "data")), "train")
    message = str(error.value)
    for part in (
        "data.multi30k_dir",
        "MULTI30K_DIR",
        str(tmp_path / "data" / "multi30k"),
        "mirror",
    ):
        assert part in message
    with pytest.raises(CorpusError, match=r"not in the mirror .*data\.multi30k_dir"):
        load_split(DataConfig(multi30k_dir=str(tmp_path)), "train")
