"""Text in, text out: tokenise, sort by length, batch by token budget, search, detokenise.

Sentences are decoded longest first in batches whose padded source tokens times the beam size
(or the samples drawn per sentence) stay within `DecodeConfig.max_tokens`, and the results come
back in input order. With `sampling`, tokens are drawn (`transformer.decoding.sampling`) in
greedy search's loop instead of searched. Blank
sentences translate to "" without a search; sources longer than the model's positional table are
truncated (with a warning).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from transformer.config import DecodeConfig
from transformer.data.batching import pad_sources
from transformer.data.special import BOS_ID, EOS_ID, PAD_ID
from transformer.data.tokenizer import Tokenizer
from transformer.decoding.beam import Hypothesis, beam_search
from transformer.decoding.ensemble import Ensemble
from transformer.decoding.greedy import greedy_search, scored_greedy_search
from transformer.decoding.sampling import Sampling, sampler
from transformer.model import Seq2SeqTransformer

logger = logging.getLogger(__name__)

Search = Callable[[torch.Tensor], list[list[Hypothesis]]]  # (B, S) source ids -> n-best lists
Progress = Callable[[int], None]  # told the number of sentences each finished batch held


def length_order(sentences: list[str], encoded: list[list[int]]) -> list[int]:
    """Indices of the non-blank sentences, longest encoding first."""
    return sorted(
        (i for i, text in enumerate(sentences) if text.strip()),
        key=lambda i: len(encoded[i]),
        reverse=True,
    )


def budget_batches(
    order: list[int], encoded: list[list[int]], width: int, max_tokens: int
) -> Iterator[list[int]]:
    """Split `order` (longest first) so that rows * (longest + EOS) * width <= max_tokens.

    `width` is the beam size (or the samples drawn per sentence): the rows a sentence becomes.
    """
    batch: list[int] = []
    for i in order:
        longest = len(encoded[batch[0]]) + 1 if batch else 0  # batch[0] is the longest
        if batch and (len(batch) + 1) * longest * width > max_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@dataclass
class CrossAttention:
    """Cross-attention of one translation, for plots.

    Attributes:
        weights: (T, S) attention of each output piece (rows) over the source pieces (columns).
        src_pieces: S labels, the source pieces and "</s>".
        tgt_pieces: T labels, the output pieces and "</s>".
        translation: the detokenised output.
    """

    weights: torch.Tensor
    src_pieces: list[str]
    tgt_pieces: list[str]
    translation: str


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run a block in eval mode, restoring the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Translator:
    """Translate sentences with a model and its tokenizer.

    Args:
        model: the seq2seq model (or an Ensemble of models), already on `device`.
        tokenizer: the model's tokenizer.
        cfg: search settings (beam size 1 is greedy search).
        device: where source batches are placed.
        sampling: draw translations at random instead of searching (`translate_nbest` draws
            cfg.n_best samples per sentence; beam_size and length_penalty are not used).
        progress: called after each batch with the number of sentences it held.
    """

    def __init__(
        self,
        model: Seq2SeqTransformer | Ensemble,
        tokenizer: Tokenizer,
        cfg: DecodeConfig,
        device: torch.device,
        *,
        sampling: Sampling | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.device = device
        self.sampling = sampling
        self.progress = progress
        self.max_src_pieces = model.max_positions - 1  # room for the EOS
        self._generator: torch.Generator | None = None
        if sampling is not None:
            self._generator = torch.Generator(device=device).manual_seed(sampling.seed)

    def translate(self, sentences: list[str]) -> list[str]:
        """The best translation of each sentence, in input order."""
        return [self.tokenizer.decode_tgt(ids) for ids in self.translate_ids(sentences)]

    def translate_ids(self, sentences: list[str]) -> list[list[int]]:
        """The best output ids (no BOS/EOS) of each sentence, in input order."""
        return [hyps[0].tokens for hyps in self._decode(sentences, self._best_search())]

    def translate_nbest(self, sentences: list[str]) -> list[list[tuple[str, float]]]:
        """Up to cfg.n_best (translation, length-normalised log-prob) pairs per sentence."""
        search = self._beam if self.sampling is None else self._samples(self.cfg.n_best)
        results = self._decode(sentences, search)
        return [[(self.tokenizer.decode_tgt(h.tokens), h.score) for h in hyps] for hyps in results]

    def attention(self, sentence: str, layer: int = -1) -> CrossAttention:
        """Translate one sentence and return its cross-attention, averaged over heads.

        Args:
            sentence: the source text.
            layer: decoder layer (Python index; -1 is the last).
        """
        if isinstance(self.model, Ensemble):
            raise ValueError("attention weights come from one model, not an ensemble.")
        src = self._encode([sentence])[0]
        src_ids = pad_sources([src], PAD_ID).to(self.device)  # (1, S)
        with eval_mode(self.model), torch.inference_mode():
            tokens = self._best_search()(src_ids)[0][0].tokens if sentence.strip() else []
            tgt_in = torch.tensor([[BOS_ID, *tokens]], device=self.device)  # (1, T)
            weights = self.model.cross_attention_weights(src_ids, tgt_in)  # (L, 1, H, T, S)
        src_pieces = self.tokenizer.src_pieces(sentence)[: len(src)]
        return CrossAttention(
            weights=weights[layer, 0].mean(dim=0).float().cpu(),  # (T, S)
            src_pieces=[*src_pieces, "</s>"],
            tgt_pieces=[*self.tokenizer.tgt_id_to_piece(tokens), "</s>"],
            translation=self.tokenizer.decode_tgt(tokens),
        )

    def _encode(self, sentences: list[str]) -> list[list[int]]:
        """Source pieces per sentence, cut to what the positional table covers."""
        encoded = self.tokenizer.encode_src(sentences)
        too_long = [i for i, ids in enumerate(encoded) if len(ids) > self.max_src_pieces]
        if too_long:
            logger.warning(
                "%d input(s) longer than %d pieces truncated (model.max_positions); first: #%d",
                len(too_long),
                self.max_src_pieces,
                too_long[0] + 1,
            )
        return [ids[: self.max_src_pieces] for ids in encoded]

    def _decode(self, sentences: list[str], search: Search) -> list[list[Hypothesis]]:
        """Run `search` over token-budget batches of the non-blank sentences, longest first."""
        results = [[Hypothesis(tokens=[], score=0.0)] for _ in sentences]
        encoded = self._encode(sentences)
        order = length_order(sentences, encoded)
        width = self.cfg.beam_size if self.sampling is None else self.cfg.n_best
        if self.progress is not None and len(order) < len(sentences):
            self.progress(len(sentences) - len(order))  # blank inputs: done without a search
        with eval_mode(self.model):
            for batch in budget_batches(order, encoded, width, self.cfg.max_tokens):
                src_ids = pad_sources([encoded[i] for i in batch], PAD_ID)  # (B, S)
                for i, hyps in zip(batch, search(src_ids.to(self.device)), strict=True):
                    results[i] = hyps
                if self.progress is not None:
                    self.progress(len(batch))
        return results

    def _best_search(self) -> Search:
        if self.sampling is not None:
            return self._samples(1)
        return self._greedy if self.cfg.beam_size == 1 else self._beam

    def _samples(self, n: int) -> Search:
        """Draw n translations per sentence: (B, S) -> n hypotheses each, scored by their
        log-probability under the model."""

        def search(src_ids: torch.Tensor) -> list[list[Hypothesis]]:
            assert self.sampling is not None and self._generator is not None
            outputs, scores = scored_greedy_search(
                self.model,
                src_ids.repeat_interleave(n, dim=0),  # (B*n, S), row b*n + i
                max_len_a=self.cfg.max_len_a,
                max_len_b=self.cfg.max_len_b,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                choose=sampler(self.sampling, self._generator),
            )
            hyps = [Hypothesis(ids, score) for ids, score in zip(outputs, scores, strict=True)]
            return [hyps[b : b + n] for b in range(0, len(hyps), n)]

        return search

    def _greedy(self, src_ids: torch.Tensor) -> list[list[Hypothesis]]:
        """Greedy search (B, S) -> one hypothesis per sentence (score not computed: nan)."""
        outputs = greedy_search(
            self.model,
            src_ids,
            max_len_a=self.cfg.max_len_a,
            max_len_b=self.cfg.max_len_b,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
        )
        return [[Hypothesis(tokens=ids, score=float("nan"))] for ids in outputs]

    def _beam(self, src_ids: torch.Tensor) -> list[list[Hypothesis]]:
        """Beam search (B, S) -> cfg.n_best hypotheses per sentence."""
        return beam_search(
            self.model,
            src_ids,
            beam_size=self.cfg.beam_size,
            length_penalty=self.cfg.length_penalty,
            max_len_a=self.cfg.max_len_a,
            max_len_b=self.cfg.max_len_b,
            n_best=self.cfg.n_best,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
        )
