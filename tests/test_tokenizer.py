"""SentencePiece tokenizer: special ids, round trips, joint vs per-language, serialization."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from transformer.data.special import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from transformer.data.tokenizer import Tokenizer, train_tokenizer


def _sentences(corpus: dict[str, Path], lang: str) -> list[str]:
    return corpus[f"train.{lang}"].read_text(encoding="utf-8").splitlines()


def _train(
    corpus: dict[str, Path], *, joint: bool = True, model_type: str = "unigram"
) -> Tokenizer:
    return train_tokenizer(
        _sentences(corpus, "en"),
        _sentences(corpus, "de"),
        src_lang="en",
        tgt_lang="de",
        model_type=model_type,
        vocab_size=64,
        joint=joint,
        character_coverage=1.0,
        input_sentence_size=0,
    )


def test_special_ids_are_the_shared_constants(tiny_parallel_corpus: dict[str, Path]) -> None:
    tokenizer = _train(tiny_parallel_corpus)
    pieces = tokenizer.tgt_id_to_piece([PAD_ID, UNK_ID, BOS_ID, EOS_ID])
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert pieces == ["<pad>", "<unk>", "<s>", "</s>"]
    ids = tokenizer.encode_src(_sentences(tiny_parallel_corpus, "en"))
    assert not {PAD_ID, BOS_ID, EOS_ID} & {i for row in ids for i in row}  # added by batching


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
@pytest.mark.parametrize("joint", [True, False])
def test_encode_decode_round_trip(
    tiny_parallel_corpus: dict[str, Path], model_type: str, joint: bool
) -> None:
    tokenizer = _train(tiny_parallel_corpus, joint=joint, model_type=model_type)
    assert tokenizer.joint == joint
    assert tokenizer.settings["model_type"] == model_type
    sentences = _sentences(tiny_parallel_corpus, "de")[:50]
    assert [tokenizer.decode_tgt(ids) for ids in tokenizer.encode_tgt(sentences)] == sentences
    text = _sentences(tiny_parallel_corpus, "en")[0]
    assert "".join(tokenizer.src_pieces(text)).replace("\u2581", " ").strip() == text
    assert len(tokenizer.src_pieces(text)) == len(tokenizer.encode_src([text])[0])


def test_decode_stops_at_eos_and_drops_bos_and_pad(tiny_parallel_corpus: dict[str, Path]) -> None:
    tokenizer = _train(tiny_parallel_corpus)
    text = _sentences(tiny_parallel_corpus, "de")[3]
    ids = tokenizer.encode_tgt([text])[0]
    noisy = [BOS_ID, *ids, EOS_ID, *ids, PAD_ID]
    assert tokenizer.decode_tgt(noisy) == text
    assert tokenizer.decode_tgt(torch.tensor([BOS_ID, *ids, PAD_ID, PAD_ID])) == text


def test_joint_and_per_language_models(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    joint = _train(tiny_parallel_corpus, joint=True)
    split = _train(tiny_parallel_corpus, joint=False)
    assert joint.src_vocab_size == joint.tgt_vocab_size
    joint.save(tmp_path / "joint")
    split.save(tmp_path / "split")
    assert sorted(p.name for p in (tmp_path / "joint").glob("*.model")) == ["spm.model"]
    assert sorted(p.name for p in (tmp_path / "split").glob("*.model")) == [
        "spm.de.model",
        "spm.en.model",
    ]
    # Each side uses its own language's model.
    en, de = (
        _sentences(tiny_parallel_corpus, "en")[:20],
        _sentences(tiny_parallel_corpus, "de")[:20],
    )
    en_model = spm.SentencePieceProcessor(model_file=str(tmp_path / "split" / "spm.en.model"))
    de_model = spm.SentencePieceProcessor(model_file=str(tmp_path / "split" / "spm.de.model"))
    assert split.encode_src(en) == en_model.encode(en)
    assert split.encode_tgt(de) == de_model.encode(de)
    assert split.encode_src(de) != split.encode_tgt(de)


@pytest.mark.parametrize("joint", [True, False])
def test_state_dict_round_trip_through_torch_save(
    tiny_parallel_corpus: dict[str, Path], joint: bool
) -> None:
    tokenizer = _train(tiny_parallel_corpus, joint=joint)
    buffer = io.BytesIO()
    torch.save({"tokenizer": tokenizer.state_dict()}, buffer)
    buffer.seek(0)
    restored = Tokenizer.from_state_dict(torch.load(buffer, weights_only=True)["tokenizer"])
    sentences = _sentences(tiny_parallel_corpus, "en")
    assert restored.encode_src(sentences) == tokenizer.encode_src(sentences)
    assert restored.encode_tgt(sentences) == tokenizer.encode_tgt(sentences)
    assert (restored.src_vocab_size, restored.tgt_vocab_size, restored.joint) == (
        tokenizer.src_vocab_size,
        tokenizer.tgt_vocab_size,
        joint,
    )
    assert restored.fingerprint == tokenizer.fingerprint
    assert (restored.src_lang, restored.tgt_lang) == ("en", "de")


def test_save_load_and_pickle(tiny_parallel_corpus: dict[str, Path], tmp_path: Path) -> None:
    tokenizer = _train(tiny_parallel_corpus)
    tokenizer.save(tmp_path)
    sentences = _sentences(tiny_parallel_corpus, "de")
    for copy in (Tokenizer.load(tmp_path), pickle.loads(pickle.dumps(tokenizer))):
        assert copy.encode_tgt(sentences) == tokenizer.encode_tgt(sentences)
        assert copy.settings == tokenizer.settings


def test_training_is_deterministic(tiny_parallel_corpus: dict[str, Path]) -> None:
    assert _train(tiny_parallel_corpus).fingerprint == _train(tiny_parallel_corpus).fingerprint


def test_missing_files_and_bad_state_are_clear_errors(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.load(tmp_path)
    tokenizer = _train(tiny_parallel_corpus)
    tokenizer.save(tmp_path)
    (tmp_path / "spm.model").unlink()
    with pytest.raises(FileNotFoundError, match="spm.model"):
        Tokenizer.load(tmp_path)
    state = tokenizer.state_dict()
    del state["src_model"]
    with pytest.raises(ValueError, match="src_model"):
        Tokenizer.from_state_dict(state)
