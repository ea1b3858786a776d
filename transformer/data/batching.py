"""The collate step that turns ids into padded tensors, and encoded splits kept in Arrow
(`sampler.py` cuts them into token-budget batches).

The conventions of a collated pair live here: the source gets EOS, the target BOS (decoder input)
or EOS (decoder output), so a row's collated lengths are its piece counts + 1 (`collated_lengths`).
An encoded split stays in Arrow (`EncodedPairs`, memory-mapped from the `datasets` cache): the
sampler holds one int64 sort key per row, and only one batch's ids become tensors at a time.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from transformer.data.special import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    import datasets

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


def _pad(flat: np.ndarray, lens: np.ndarray, pad_id: int, *, bos: bool, eos: bool) -> torch.Tensor:
    """Right-pads concatenated id rows into one tensor, optionally with BOS before and EOS after.

    Args:
        flat: (sum(lens),) the rows' ids one after another.
        lens: (B,) each row's length.
    """
    lens_t = torch.from_numpy(np.asarray(lens, dtype=np.int64))  # (B,)
    start = int(bos)
    width = (int(lens_t.max()) if len(lens_t) else 0) + start + int(eos)
    out = torch.full((len(lens_t), width), pad_id, dtype=torch.int64)  # (B, L)
    # One flat copy scattered into the body positions (row-major = concatenation order) is
    # far cheaper than a tensor per row or boolean-index assignment.
    positions = torch.arange(width)  # (L,)
    body = (positions >= start) & (positions < lens_t[:, None] + start)  # (B, L)
    out.masked_scatter_(body, torch.from_numpy(np.asarray(flat, dtype=np.int64)))
    if bos:
        out[:, 0] = BOS_ID
    if eos:
        out[torch.arange(len(lens_t)), lens_t + start] = EOS_ID
    return out


def _flat(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(concatenated ids, lengths) of id lists."""
    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    return np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64), lens


def pad_sources(src: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> torch.Tensor:
    """(B, S) int64 source rows as the model reads them: pieces + EOS, then PAD."""
    return _pad(*_flat(src), pad_id, bos=False, eos=True)


def _batch(
    src: tuple[np.ndarray, np.ndarray],
    tgt: tuple[np.ndarray, np.ndarray],
    indices: Sequence[int],
    pad_id: int,
) -> Batch:
    """The Batch of (flat ids, lengths) of sources and targets: src + EOS, BOS + tgt, tgt + EOS."""
    return Batch(
        src_ids=_pad(*src, pad_id, bos=False, eos=True),  # (B, S)
        tgt_in_ids=_pad(*tgt, pad_id, bos=True, eos=False),  # (B, T)
        tgt_out_ids=_pad(*tgt, pad_id, bos=False, eos=True),  # (B, T)
        indices=torch.as_tensor(np.asarray(indices, dtype=np.int64)),
        n_src_tokens=int(src[1].sum()) + len(src[1]),
        n_tgt_tokens=int(tgt[1].sum()) + len(tgt[1]),
    )


def collate(
    src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], indices: Sequence[int], pad_id: int
) -> Batch:
    """Builds a Batch from id lists: src + EOS, BOS + tgt as decoder input, tgt + EOS as output.

    Args:
        src: Source piece ids per sentence, without EOS.
        tgt: Target piece ids per sentence, without BOS/EOS.
        indices: Dataset rows of the pairs.
        pad_id: Padding id.
    """
    return _batch(_flat(src), _flat(tgt), indices, pad_id)


def collated_lengths(piece_lengths: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N,) lengths of each row's collated source (pieces + EOS) and target tensors (pieces + BOS
    or EOS), from its piece counts: what `TokenBatchSampler` budgets."""
    src, tgt = piece_lengths
    return src + 1, tgt + 1


def _list_lengths(column: pa.ChunkedArray) -> np.ndarray:
    """(N,) int32 element counts of a list column, read from its offsets alone."""
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int32)
    return pc.list_value_length(column).to_numpy().astype(np.int32, copy=False)


def _views(column: pa.ChunkedArray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(offsets, values) of each chunk of a list<int> column as zero-copy numpy views: row i of a
    chunk is values[offsets[i]:offsets[i + 1]]. Making the views reads no ids."""
    return [(chunk.offsets.to_numpy(), chunk.values.to_numpy()) for chunk in column.chunks]


class EncodedPairs:
    """The src_ids and tgt_ids of an encoded split, left in Arrow (memory-mapped from the
    `datasets` cache); `collate` reads one batch's rows out of it.

    Args:
        src: Source piece ids per row (no EOS), a list<int> column.
        tgt: Target piece ids per row (no BOS/EOS), aligned with `src`.
        lengths: The rows' piece counts (src, tgt), if known; otherwise they are read from the
            columns' offsets, which maps pages of every record batch into memory.
    """

    def __init__(
        self,
        src: pa.ChunkedArray,
        tgt: pa.ChunkedArray,
        lengths: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if len(src) != len(tgt) or (lengths is not None and len(lengths[0]) != len(src)):
            raise ValueError(f"{len(src)} source rows but {len(tgt)} target rows or lengths.")
        self._columns = (src, tgt)
        self._lengths = lengths
        self._starts = tuple(
            np.cumsum([0] + [len(chunk) for chunk in column.chunks])[:-1] for column in (src, tgt)
        )
        self._views = (_views(src), _views(tgt))

    @classmethod
    def from_dataset(
        cls, dataset: datasets.Dataset, lengths: tuple[np.ndarray, np.ndarray] | None = None
    ) -> EncodedPairs:
        """The id columns of a split encoded by `transformer.data.prepare` (no copy)."""
        table = dataset.with_format("arrow")[:]
        return cls(table.column("src_ids"), table.column("tgt_ids"), lengths)

    @classmethod
    def from_lists(cls, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> EncodedPairs:
        """Pairs held in memory (tests, small splits)."""
        ids = pa.list_(pa.int32())
        return cls(
            pa.chunked_array([pa.array(list(src), ids)]),
            pa.chunked_array([pa.array(list(tgt), ids)]),
        )

    def __len__(self) -> int:
        return len(self._columns[0])

    def piece_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) int32 piece counts of each row's source and target (no BOS/EOS)."""
        if self._lengths is not None:
            return self._lengths
        src, tgt = (_list_lengths(column) for column in self._columns)
        return src, tgt

    def collated_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) int32 lengths of each row's collated source (pieces + EOS) and target tensors
        (pieces + BOS or EOS): what `TokenBatchSampler` budgets."""
        return collated_lengths(self.piece_lengths())

    def _side(self, side: int, indices: Sequence[int]) -> list[np.ndarray]:
        """The id arrays of some rows of one side, sliced from the chunk views (the cost of a row
        does not depend on how many rows or chunks the split has)."""
        rows = np.asarray(indices, dtype=np.int64)
        starts, views = self._starts[side], self._views[side]
        chunks = np.searchsorted(starts, rows, side="right") - 1  # (B,)
        found = []
        for chunk, row in zip(chunks.tolist(), (rows - starts[chunks]).tolist(), strict=True):
            offsets, values = views[chunk]
            found.append(values[offsets[row] : offsets[row + 1]])
        return found

    def rows(self, indices: Sequence[int]) -> tuple[list[list[int]], list[list[int]]]:
        """The source and target ids of some rows as Python lists."""
        src, tgt = ([ids.tolist() for ids in self._side(side, indices)] for side in (0, 1))
        return src, tgt

    def collate(self, indices: Sequence[int], pad_id: int = PAD_ID) -> Batch:
        """The Batch of these rows, as `collate` builds it from lists."""
        src, tgt = (self._side(side, indices) for side in (0, 1))
        return _batch(_concatenated(src), _concatenated(tgt), indices, pad_id)


def _concatenated(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(concatenated ids, lengths) of id arrays."""
    lens = np.fromiter((len(ids) for ids in arrays), dtype=np.int64, count=len(arrays))
    return (np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)), lens

