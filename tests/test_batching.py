"""Collate and the token-budget sampler: tensors, budget, coverage, determinism, resume, DDP."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import DataLoader

from transformer.data.batching import Batch, collate
from transformer.data.sampler import TokenBatchSampler, padding_stats
from transformer.data.special import BOS_ID, EOS_ID, PAD_ID


def _lengths(n: int, seed: int = 0) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    src = [rng.randint(1, 40) for _ in range(n)]
    return src, [max(1, s + rng.randint(-5, 5)) for s in src]


def _reference_pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows], dtype=torch.int64)


def test_collate_matches_a_row_by_row_reference() -> None:
    rng = random.Random(1)
    src = [[rng.randint(4, 50) for _ in range(rng.randint(0, 7))] for _ in range(5)]
    tgt = [[rng.randint(4, 50) for _ in range(rng.randint(0, 7))] for _ in range(5)]
    batch = collate(src, tgt, [10, 11, 12, 13, 14], PAD_ID)
    torch.testing.assert_close(batch.src_ids, _reference_pad([s + [EOS_ID] for s in src]))
    torch.testing.assert_close(batch.tgt_in_ids, _reference_pad([[BOS_ID] + t for t in tgt]))
    torch.testing.assert_close(batch.tgt_out_ids, _reference_pad([t + [EOS_ID] for t in tgt]))
    assert batch.src_ids.dtype == batch.tgt_in_ids.dtype == torch.int64
    assert batch.indices.tolist() == [10, 11, 12, 13, 14]
    assert batch.n_tgt_tokens == int((batch.tgt_out_ids != PAD_ID).sum())
    assert batch.n_src_tokens == int((batch.src_ids != PAD_ID).sum())


def test_batch_to_moves_token_tensors() -> None:
    batch = collate([[5, 6]], [[7]], [0], PAD_ID).to("cpu")
    assert isinstance(batch, Batch)
    assert batch.src_ids.tolist() == [[5, 6, EOS_ID]] and batch.tgt_in_ids.tolist() == [[BOS_ID, 7]]


def test_every_row_once_and_every_batch_within_budget() -> None:
    src, tgt = _lengths(500)
    sampler = TokenBatchSampler(src, tgt, 200, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for batch in batches:
        assert len(batch) * max(max(src[i], tgt[i]) for i in batch) <= 200
    assert len(batches) == len(sampler)


def test_sorted_buckets_keep_padding_small() -> None:
    src, tgt = _lengths(2000)
    sampler = TokenBatchSampler(src, tgt, 1000, seed=0)
    real, total = padding_stats(list(sampler), src, tgt)
    shuffled = list(range(2000))
    random.Random(0).shuffle(shuffled)
    random_batches = [shuffled[i : i + 25] for i in range(0, 2000, 25)]
    real_r, total_r = padding_stats(random_batches, src, tgt)
    assert 1 - real / total < 0.1 < 1 - real_r / total_r


def test_a_row_longer_than_the_budget_gets_its_own_batch() -> None:
    src, tgt = [3, 3, 300, 3], [3, 3, 5, 3]
    batches = list(TokenBatchSampler(src, tgt, 100, seed=0))
    assert [2] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]


def test_deterministic_per_seed_and_epoch_and_reshuffled_across_epochs() -> None:
    src, tgt = _lengths(400)

    def epoch(seed: int, n: int) -> list[list[int]]:
        sampler = TokenBatchSampler(src, tgt, 150, seed=seed)
        sampler.set_epoch(n)
        return list(sampler)

    assert epoch(1, 0) == epoch(1, 0)
    assert epoch(1, 0) != epoch(1, 1)
    assert epoch(1, 0) != epoch(2, 0)
    assert len(epoch(1, 0)) == len(epoch(1, 5))


def test_unshuffled_batches_come_in_ascending_length() -> None:
    src, tgt = _lengths(300)
    batches = list(TokenBatchSampler(src, tgt, 150, seed=0, shuffle=False))
    longest = [max(max(src[i], tgt[i]) for i in b) for b in batches]
    assert longest == sorted(longest)


def test_resume_inside_an_epoch_continues_exactly() -> None:
    src, tgt = _lengths(400)
    full = TokenBatchSampler(src, tgt, 150, seed=7)
    full.set_epoch(2)
    expected = list(full)
    first = TokenBatchSampler(src, tgt, 150, seed=7)
    first.set_epoch(2)
    iterator = iter(first)
    head = [next(iterator) for _ in range(5)]
    state = first.state_dict()
    assert state == {"epoch": 2, "position": 5}
    resumed = TokenBatchSampler(src, tgt, 150, seed=7)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # what a training loop does on resume: must not restart the epoch
    assert head + list(resumed) == expected


def test_finishing_an_epoch_moves_to_the_next() -> None:
    src, tgt = _lengths(200)
    sampler = TokenBatchSampler(src, tgt, 150, seed=0)
    list(sampler)
    assert sampler.state_dict() == {"epoch": 1, "position": 0}
    reference = TokenBatchSampler(src, tgt, 150, seed=0)
    reference.set_epoch(1)
    assert list(sampler) == list(reference)


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_get_disjoint_batches_of_equal_count(shuffle: bool) -> None:
    src, tgt = _lengths(500)
    n_batches = len(TokenBatchSampler(src, tgt, 150, seed=4, shuffle=shuffle))
    world = next(w for w in (3, 4, 5, 7) if n_batches % w)  # batches do not split evenly
    ranks = [
        list(TokenBatchSampler(src, tgt, 150, seed=4, shuffle=shuffle, rank=r, world_size=world))
        for r in range(world)
    ]
    assert len({len(r) for r in ranks}) == 1
    rows = [i for rank in ranks for batch in rank for i in batch]
    if shuffle:  # cut to a multiple of the world size: disjoint, fewer than `world` dropped
        assert len(rows) == len(set(rows))
        assert n_batches - world < world * len(ranks[0]) < n_batches
    else:  # padded with repeats: every row is seen
        assert set(rows) == set(range(500))
        assert n_batches < world * len(ranks[0]) < n_batches + world


def test_rejects_mismatched_lengths_and_bad_rank() -> None:
    with pytest.raises(ValueError, match="source lengths"):
        TokenBatchSampler([1, 2], [1], 10, seed=0)
    with pytest.raises(ValueError, match="rank"):
        TokenBatchSampler([1], [1], 10, seed=0, rank=2, world_size=2)


def test_works_as_a_dataloader_batch_sampler() -> None:
    rng = random.Random(0)
    src = [[rng.randint(4, 30) for _ in range(rng.randint(1, 9))] for _ in range(60)]
    tgt = [[rng.randint(4, 30) for _ in range(rng.randint(1, 9))] for _ in range(60)]
    sampler = TokenBatchSampler([len(s) + 1 for s in src], [len(t) + 1 for t in tgt], 40, seed=0)
    loader = DataLoader(
        list(range(60)),
        batch_sampler=sampler,
        collate_fn=lambda idx: collate([src[i] for i in idx], [tgt[i] for i in idx], idx, PAD_ID),
    )
    batches = list(loader)
    assert sorted(i for b in batches for i in b.indices.tolist()) == list(range(60))
    assert all(b.src_ids.numel() <= 40 and b.tgt_in_ids.numel() <= 40 for b in batches)
    assert sum(b.n_tgt_tokens for b in batches) == sum(len(t) + 1 for t in tgt)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n_rows", [1, 2, 3])
def test_fewer_batches_than_ranks_still_give_every_rank_its_length(
    shuffle: bool, n_rows: int
) -> None:
    lengths = [8] * n_rows  # one row per batch at a budget of 8 tokens
    world = 4
    ranks = [
        TokenBatchSampler(lengths, lengths, 8, seed=0, shuffle=shuffle, rank=r, world_size=world)
        for r in range(world)
    ]
    yielded = [list(sampler) for sampler in ranks]
    assert [len(batches) for batches in yielded] == [len(sampler) for sampler in ranks] == [1] * 4
    assert {i for batches in yielded for batch in batches for i in batch} == set(range(n_rows))
