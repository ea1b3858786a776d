"""Token-budget batches from length-sorted buckets (shuffled per epoch, resumable, split across
distributed ranks) and the collate step that turns id lists into padded tensors.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from transformer.data.tokenizer import BOS_ID, EOS_ID

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """A padded batch of sentence pairs.

    Attributes:
        src_ids: (B, S) int64, source pieces + EOS, then PAD.
        tgt_in_ids: (B, T) int64, BOS + target pieces, then PAD (the decoder input).
        tgt_out_ids: (B, T) int64, target pieces + EOS, then PAD (what the decoder predicts).
        indices: (B,) int64, the dataset rows of the pairs; stays on the CPU in `to`.
        n_src_tokens: Non-pad tokens in `src_ids`.
        n_tgt_tokens: Non-pad tokens in `tgt_out_ids` (the loss normaliser).
    """

    src_ids: torch.Tensor
    tgt_in_ids: torch.Tensor
    tgt_out_ids: torch.Tensor
    indices: torch.Tensor
    n_src_tokens: int
    n_tgt_tokens: int

    def to(self, device: torch.device | str) -> Batch:
        """The batch with its token tensors on `device`."""
        return Batch(
            src_ids=self.src_ids.to(device, non_blocking=True),
            tgt_in_ids=self.tgt_in_ids.to(device, non_blocking=True),
            tgt_out_ids=self.tgt_out_ids.to(device, non_blocking=True),
            indices=self.indices,
            n_src_tokens=self.n_src_tokens,
            n_tgt_tokens=self.n_tgt_tokens,
        )


def _pad(seqs: list[list[int]], pad_id: int, *, bos: bool, eos: bool) -> torch.Tensor:
    """Right-pads id lists into one tensor, optionally with BOS before and EOS after each."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.int64)  # (B,)
    start = int(bos)
    width = int(lens.max()) + start + int(eos)
    out = torch.full((len(seqs), width), pad_id, dtype=torch.int64)  # (B, L)
    # One flat copy scattered into the body positions (row-major = concatenation order) is
    # far cheaper than a tensor per row or boolean-index assignment.
    flat = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64))
    positions = torch.arange(width)  # (L,)
    body = (positions >= start) & (positions < lens[:, None] + start)  # (B, L)
    out.masked_scatter_(body, flat)
    if bos:
        out[:, 0] = BOS_ID
    if eos:
        out[torch.arange(len(seqs)), lens + start] = EOS_ID
    return out


def collate(src: list[list[int]], tgt: list[list[int]], indices: list[int], pad_id: int) -> Batch:
    """Builds a Batch: src + EOS, BOS + tgt as decoder input, tgt + EOS as decoder output.

    Args:
        src: Source piece ids per sentence, without EOS.
        tgt: Target piece ids per sentence, without BOS/EOS.
        indices: Dataset rows of the pairs.
        pad_id: Padding id.
    """
    src_ids = _pad(src, pad_id, bos=False, eos=True)  # (B, S)
    tgt_in_ids = _pad(tgt, pad_id, bos=True, eos=False)  # (B, T)
    tgt_out_ids = _pad(tgt, pad_id, bos=False, eos=True)  # (B, T)
    return Batch(
        src_ids=src_ids,
        tgt_in_ids=tgt_in_ids,
        tgt_out_ids=tgt_out_ids,
        indices=torch.tensor(indices, dtype=torch.int64),
        n_src_tokens=sum(len(s) for s in src) + len(src),
        n_tgt_tokens=sum(len(t) for t in tgt) + len(tgt),
    )


def _bounds(sorted_keys: list[int], max_tokens: int) -> list[tuple[int, int]]:
    """Greedy [start, end) runs of ascending lengths whose count x last length fits the budget."""
    bounds, start = [], 0
    for end, key in enumerate(sorted_keys):
        if end > start and (end - start + 1) * key > max_tokens:
            bounds.append((start, end))
            start = end
    if sorted_keys:
        bounds.append((start, len(sorted_keys)))
    return bounds


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

    `position` counts the batches yielded in the current epoch. With DataLoader workers, the
    loader draws batches ahead of the training loop, so save the number of batches the loop
    consumed rather than this sampler's own state.
    """

    def __init__(
        self,
        src_lens: Sequence[int],
        tgt_lens: Sequence[int],
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
        src = torch.as_tensor(src_lens, dtype=torch.int64)  # (N,)
        tgt = torch.as_tensor(tgt_lens, dtype=torch.int64)  # (N,)
        longest = torch.maximum(src, tgt)  # (N,)
        base = int(longest.max()) + 1 if len(longest) else 1
        self._sort_key = (longest * base + src) * base + tgt  # (N,) lexicographic (max, src, tgt)
        self._bounds = _bounds(torch.sort(longest).values.tolist(), max_tokens)
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

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of `epoch`, in order (deterministic for (seed, epoch))."""
        gen = self._generator(epoch)
        perm = torch.randperm(len(self._sort_key), generator=gen)  # (N,) random tie-break
        order = perm[torch.sort(self._sort_key[perm], stable=True).indices].tolist()
        batches = [order[start:end] for start, end in self._bounds]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        n, world = len(batches), self.world_size
        if self.shuffle and n >= world:
            batches = batches[: n - n % world]
        elif n:
            # Cyclic, so that even fewer batches than ranks give every rank ceil(n / world):
            # a rank with one batch less would leave the others waiting in a DDP all-reduce.
            batches = batches + [batches[i % n] for i in range(-n % world)]
        return batches[self.rank :: world]

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch; a new epoch starts at its first batch, the current one stays put."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._position = 0

    def __iter__(self) -> Iterator[list[int]]:
        """Yields the rest of the current epoch, then moves on to the next epoch."""
        batches = self.epoch_batches(self._epoch)
        while self._position < len(batches):
            self._position += 1
            yield batches[self._position - 1]
        self._epoch += 1
        self._position = 0

    def state_dict(self) -> dict[str, int]:
        """{"epoch", "position"}: position is the number of batches yielded in the epoch."""
        return {"epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resumes at `state["position"]` inside `state["epoch"]`."""
        self._epoch = int(state["epoch"])
        self._position = int(state["position"])
