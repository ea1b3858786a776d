"""Real Multi30k from the mirror named by MULTI30K_DIR: every split and direction, the de-en
statistics with the default tokenizer, and the padding of token-budget batches.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from transformer.config import DataConfig, TrainConfig, TrainRunConfig
from transformer.data import multi30k
from transformer.data.batching import collate
from transformer.data.corpus import CorpusError, load_split
from transformer.data.prepare import PreparedData, format_stats, pair_lengths, prepare_data
from transformer.data.sampler import TokenBatchSampler
from transformer.data.special import PAD_ID

SIZES = {"train": 29000, "val": 1014, "test_2016_flickr": 1000, "test_2017_flickr": 1000}
logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def de_en(multi30k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    """prepare_data on Multi30k de->en with the default tokenizer, run once per module."""
    folder = tmp_path_factory.mktemp("multi30k_de_en")
    cfg = TrainRunConfig(
        data=DataConfig(
            src_lang="de",
            tgt_lang="en",
            multi30k_dir=str(multi30k_dir),
            cache_dir=str(folder / "data"),
        ),
        train=TrainConfig(max_tokens=4096),
        run_dir=str(folder / "run"),
    )
    return prepare_data(cfg)


def test_mirror_matches_the_sums_in_the_code(multi30k_dir: Path) -> None:
    for name, expected in multi30k.SHA256.items():
        assert multi30k.sha256_of(multi30k_dir / name) == expected, name


@pytest.mark.slow  # reads every split of the real Multi30k
def test_every_split_in_every_direction(multi30k_dir: Path) -> None:
    loaded: dict[tuple[str, str, str], list[str]] = {}
    for src, tgt in itertools.permutations(multi30k.LANGUAGES, 2):
        cfg = DataConfig(src_lang=src, tgt_lang=tgt, multi30k_dir=str(multi30k_dir))
        for split, size in SIZES.items():
            if split == "test_2017_flickr" and "cs" in (src, tgt):
                with pytest.raises(CorpusError, match="no split 'test_2017_flickr'"):
                    load_split(cfg, split)
                continue
            dataset = load_split(cfg, split)
            assert len(dataset) == size, (src, tgt, split)
            pairs = dataset[:]
            loaded[(src, split, tgt)] = pairs["src"]
            # The same sentence of a language is found whichever side it is on.
            if (tgt, split, src) in loaded:
                assert loaded[(tgt, split, src)] == pairs["tgt"]


def test_generic_split_names_map_to_the_release(multi30k_dir: Path) -> None:
    cfg = DataConfig(src_lang="en", tgt_lang="fr", multi30k_dir=str(multi30k_dir))
    assert load_split(cfg, "validation")[:] == load_split(cfg, "val")[:]
    assert load_split(cfg, "test")[:] == load_split(cfg, "test_2016_flickr")[:]


@pytest.mark.slow  # prepares the real Multi30k (tokenizer, encoding)
def test_de_en_statistics(de_en: PreparedData) -> None:
    stats = de_en.stats
    assert de_en.tokenizer.joint and de_en.tokenizer.src_vocab_size == 8000
    train = stats.splits["train"]
    assert train.pairs + train.dropped_length + train.dropped_empty == SIZES["train"]
    assert train.dropped_length < 0.01 * SIZES["train"]
    assert stats.splits["validation"].pairs == SIZES["val"]
    assert stats.splits["test"].pairs == SIZES["test_2016_flickr"]
    src, tgt = pair_lengths(de_en.splits["train"])
    assert (train.src_tokens, train.tgt_tokens) == (sum(src), sum(tgt))
    assert max(src) <= 256 and max(tgt) <= 256
    # Pieces, not characters or words: mean length well between those scales.
    words = sum(len(s.split()) for s in de_en.splits["train"]["tgt"][:]) / train.pairs
    assert words * 0.8 < train.tgt_len_mean < words * 2
    text = format_stats(stats)
    logger.info("Multi30k de->en statistics:\n%s", text)
    assert f"{train.pairs:,}" in text and "multi30k de->en" in text


@pytest.mark.slow  # prepares the real Multi30k (tokenizer, encoding)
def test_padding_under_ten_percent_at_4096_tokens(de_en: PreparedData) -> None:
    train = de_en.splits["train"]
    src_ids, tgt_ids = train["src_ids"][:], train["tgt_ids"][:]
    sampler = TokenBatchSampler(
        [len(s) + 1 for s in src_ids], [len(t) + 1 for t in tgt_ids], 4096, seed=1
    )
    real = total = 0
    for indices in sampler:
        batch = collate([src_ids[i] for i in indices], [tgt_ids[i] for i in indices], indices, 0)
        assert (
            batch.src_ids.shape[0] * max(batch.src_ids.shape[1], batch.tgt_in_ids.shape[1]) <= 4096
        )
        for tensor in (batch.src_ids, batch.tgt_out_ids):
            real += int((tensor != PAD_ID).sum())
            total += tensor.numel()
    padding = 1 - real / total
    logger.info("Multi30k de->en padding at max_tokens=4096: %.2f%%", 100 * padding)
    assert padding < 0.10
    assert padding == pytest.approx(de_en.stats.train_padding, abs=0.01)
