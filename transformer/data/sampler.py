"""Token-budget batches from length-sorted buckets: shuffled per epoch, resumable, and split
across distributed ranks (`batching.py` collates them into tensors)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)


def _bounds(sorted_keys: np.ndarray, max_tokens: int) -> np.ndarray:
    """(n_batches, 2) greedy [start, end) runs of ascending lengths whose count x last length fits
    the budget (a row over it gets a run of its own).

    A run from `start` ends at the first `end` whose (end - start + 1) x key[end] exceeds the
    budget; that product only grows with `end`, and key[end] >= key[start] bounds how far to look,
    so each run costs one vectorised scan of at most max_tokens // key[start] + 1 rows.
    """
    keys = np.asarray(sorted_keys, dtype=np.int64)  # (N,)
    n, bounds, start = len(keys), [], 0
    while start < n:
        stop = min(n, start + max_tokens // max(int(keys[start]), 1) + 2)
        sizes = np.arange(2, stop - start + 1)  # (W,) rows in the run if it took start+1 .. stop-1
        over = np.flatnonzero(sizes * keys[start + 1 : stop] > max_tokens)
        end = start + 1 + int(over[0]) if len(over) else stop
        bounds.append((start, end))
        start = end
    return np.asarray(bounds, dtype=np.int64).reshape(-1, 2)


def padding_stats(
    batches: Sequence[Sequence[int]], src_lens: Sequence[int], tgt_lens: Sequence[int]
) -> tuple[int, int]:
    """(real tokens, total tokens incl. padding) of the src and tgt tensors of these batches."""
    real = total = 0
    for batch in batches:
        s = [src_lens[i] for i in batch]
        t = [tgt_lens[i] for i in batch]
        real += sum(s) + sum(t)
        total += len(batch) * (max(s) + max(t))
    return real, total


class TokenBatchSampler:
    """Batches of dataset rows under a token budget, for `DataLoader(batch_sampler=...)`.

    Rows are sorted by max(src_len, tgt_len), then src_len, then tgt_len, with ties broken at
    random from (seed, epoch), and cut into runs whose size x longest length (padding counted)
    fits `max_tokens`; a row longer than the budget gets a batch of its own. The batch order is
    shuffled per epoch. Both depend only on (seed, epoch), so every rank builds the same list and
    a resumed run continues exactly. The cut points depend only on the sorted lengths, so the
    number of batches is the same in every epoch.

    With several ranks, rank r takes batches r, r + W, ...: when shuffling, the list is first cut
    to a multiple of W (the few dropped batches differ per epoch); without shuffling (validation),
    or with fewer batches than ranks, it is padded cyclically with its first batches instead, so
    no row is skipped. Either way every rank yields exactly `len(self)` batches.

    Memory: one int64 sort key per row, and during an epoch its order (one int64 per row) and the
    batch bounds; a batch becomes a Python list only when it is yielded.

    `position` counts the batches yielded in the current epoch. With DataLoader workers, the
    loader draws batches ahead of the training loop, so save the number of batches the loop
    consumed rather than this sampler's own state.
    """

    def __init__(
        self,
        src_lens: Sequence[int] | np.ndarray,
        tgt_lens: Sequence[int] | np.ndarray,
        max_tokens: int,
        *,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """Builds the sampler.

        Args:
            src_lens: Length of each row's collated source tensor (pieces + EOS).
            tgt_lens: Length of each row's collated target tensors (pieces + 1).
            max_tokens: Budget per batch: sentences x longest padded length.
            seed: Seeds tie-breaking and batch order, together with the epoch.
            shuffle: Shuffle the batch order per epoch (False keeps ascending length).
            rank: This process's rank.
            world_size: Number of ranks.
        """
        if len(src_lens) != len(tgt_lens):
            raise ValueError(f"{len(src_lens)} source lengths but {len(tgt_lens)} target lengths.")
        if max_tokens <= 0 or not 0 <= rank < world_size:
            raise ValueError(
                f"Need max_tokens > 0 and 0 <= rank < world_size; got max_tokens={max_tokens}, "
                f"rank={rank}, world_size={world_size}."
            )
        self.max_tokens = max_tokens
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        src = torch.as_tensor(np.asarray(src_lens, dtype=np.int64))  # (N,)
        tgt = torch.as_tensor(np.asarray(tgt_lens, dtype=np.int64))  # (N,)
        longest = torch.maximum(src, tgt)  # (N,)
        base = int(longest.max()) + 1 if len(longest) else 1
        self._sort_key = (longest * base + src) * base + tgt  # (N,) lexicographic (max, src, tgt)
        self._bounds = _bounds(torch.sort(longest).values.numpy(), max_tokens)  # (n_batches, 2)
        n_long = int((longest > max_tokens).sum())
        if n_long:
            logger.warning(
                "%d rows exceed max_tokens=%d; each gets a batch of its own", n_long, max_tokens
            )
        self._epoch = 0
        self._position = 0

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        n = len(self._bounds)
        if self.shuffle and n >= self.world_size:
            return n // self.world_size
        return -(-n // self.world_size)

    def _generator(self, epoch: int) -> torch.Generator:
        # torch keeps only the low 32 bits of a CPU seed, so hash (seed, epoch) into them.
        digest = hashlib.sha256(f"{self.seed}/{epoch}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:4], "little"))

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(order, bounds): rows in sorted order (N,) and this rank's batches of `epoch` as
        [start, end) runs of `order` (len(self), 2), in the order they are yielded."""
        gen = self._generator(epoch)
        perm = torch.randperm(len(self._sort_key), generator=gen)  # (N,) random tie-break
        order = perm[torch.sort(self._sort_key[perm], stable=True).indices].numpy()  # (N,)
        batch_ids = np.arange(len(self._bounds))
        if self.shuffle:
            batch_ids = torch.randperm(len(batch_ids), generator=gen).numpy()
        n, world = len(batch_ids), self.world_size
        if self.shuffle and n >= world:
            batch_ids = batch_ids[: n - n % world]
        elif n:
            # Cyclic, so that even fewer batches than ranks give every rank ceil(n / world):
            # a rank with one batch less would leave the others waiting in a DDP all-reduce.
            batch_ids = np.concatenate([batch_ids, batch_ids[np.arange(-n % world) % n]])
        return order, self._bounds[batch_ids[self.rank :: world]]

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of `epoch`, in order (deterministic for (seed, epoch))."""
        order, bounds = self._plan(epoch)
        return [order[start:end].tolist() for start, end in bounds]

    def padding(self, src_lens: np.ndarray, tgt_lens: np.ndarray) -> tuple[int, int]:
        """(real tokens, total tokens incl. padding) of the src and tgt tensors of this rank's
        batches in epoch 0, as `padding_stats` counts them, computed without Python lists."""
        order, bounds = self._plan(0)
        if not len(bounds):
            return 0, 0
        total = real = 0
        for lens in (np.asarray(src_lens, dtype=np.int64), np.asarray(tgt_lens, dtype=np.int64)):
            sorted_lens = lens[order]  # (N,)
            sums = np.add.reduceat(sorted_lens, self._bounds[:, 0])  # (n_batches,) per run
            longest = np.maximum.reduceat(sorted_lens, self._bounds[:, 0])  # (n_batches,)
            run_of = np.searchsorted(self._bounds[:, 0], bounds[:, 0])  # (len(self),)
            sizes = bounds[:, 1] - bounds[:, 0]
            real += int(sums[run_of].sum())
            total += int((sizes * longest[run_of]).sum())
        return real, total

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch; a new epoch starts at its first batch, the current one stays put."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._position = 0

    def __iter__(self) -> Iterator[list[int]]:
        """Yields the rest of the current epoch, then moves on to the next epoch."""
        order, bounds = self._plan(self._epoch)
        while self._position < len(bounds):
            start, end = bounds[self._position]
            self._position += 1
            yield order[start:end].tolist()
        self._epoch += 1
        self._position = 0

    def state_dict(self) -> dict[str, int]:
        """{"epoch", "position"}: position is the number of batches yielded in the epoch."""
        return {"epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resumes at `state["position"]` inside `state["epoch"]`."""
        self._epoch = int(state["epoch"])
        self._position = int(state["position"])
