"""Text in, text out with a CTranslate2 model: the `Translator` interface on an exported folder.

Sentences are tokenised by our tokenizer, sorted and batched by the same token budget as
`transformer.decoding.translator`, and each batch goes to `ctranslate2.Translator.translate_batch`
with the closest equivalents of our search settings:
- length penalty: CTranslate2 divides a hypothesis' log-probability by length^alpha, ours by
  GNMT's ((5 + length) / 6)^alpha; alpha is passed as given, so the two rank hypotheses alike
  only at alpha 0.
- maximum length: CTranslate2 takes one number per batch, so a batch gets the largest of its
  sentences' a * |src| + b limits, and each output is then cut to its own sentence's limit. For
  greedy search and sampling this gives exactly ours (a prefix is decided before what follows);
  a beam may have ranked its hypotheses differently with the longer limit.
PAD and BOS are never generated and EOS not at step 0 (`min_decoding_length=1`), as in ours.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from transformer.checkpoint import CheckpointError
from transformer.config import DecodeConfig
from transformer.data.tokenizer import Tokenizer
from transformer.decoding.beam import Hypothesis
from transformer.decoding.greedy import max_output_lengths
from transformer.decoding.sampling import Sampling
from transformer.decoding.translator import budget_batches, length_order
from transformer.export.ct2_spec import import_ctranslate2

_NEVER = [["<pad>"], ["<s>"]]  # suppressed sequences: our searches never emit PAD or BOS


class CT2Translator:
    """Translate sentences with an exported folder (see module docstring for the differences).

    Args:
        folder: the exported folder (model.bin and the vocabularies).
        tokenizer: the folder's tokenizer.
        cfg: search settings (beam size, length penalty, max length, n-best, batch budget).
        max_positions: the model's positional table size (sources are cut to fit, as ours).
        device: cpu or cuda.
        compute_type: CTranslate2's compute type; "default" keeps the exported quantization.
        threads: intra-op threads (0: CTranslate2's default).
        sampling: draw translations at random (top-k, top-p, temperature, seed) instead.
        progress: called after each batch with the number of sentences it held.
    """

    def __init__(
        self,
        folder: Path,
        tokenizer: Tokenizer,
        cfg: DecodeConfig,
        *,
        max_positions: int,
        device: torch.device,
        compute_type: str = "default",
        threads: int = 0,
        sampling: Sampling | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        ct2 = import_ctranslate2()
        try:
            self.engine = ct2.Translator(
                str(folder),
                device=device.type,
                compute_type=compute_type,
                inter_threads=1,
                intra_threads=threads,
            )
        except (RuntimeError, ValueError) as error:  # a missing or damaged model.bin, say
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise CheckpointError(
                f"{folder}: CTranslate2 cannot load it ({reason}); export the checkpoint again "
                "(tmt-export)."
            ) from error
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.device = device
        self.sampling = sampling
        self.progress = progress
        self.max_positions = max_positions
        self._piece_ids = {
            piece: i
            for i, piece in enumerate(tokenizer.tgt_id_to_piece(range(tokenizer.tgt_vocab_size)))
        }
        if sampling is not None:
            ct2.set_random_seed(sampling.seed)

    def translate(self, sentences: list[str]) -> list[str]:
        """The best translation of each sentence, in input order."""
        return [self.tokenizer.decode_tgt(ids) for ids in self.translate_ids(sentences)]

    def translate_ids(self, sentences: list[str]) -> list[list[int]]:
        """The best output ids (no BOS/EOS) of each sentence, in input order."""
        return [hyps[0].tokens for hyps in self._decode(sentences, 1)]

    def translate_nbest(self, sentences: list[str]) -> list[list[tuple[str, float]]]:
        """Up to cfg.n_best (translation, score) pairs per sentence (CTranslate2's scores)."""
        results = self._decode(sentences, self.cfg.n_best)
        return [[(self.tokenizer.decode_tgt(h.tokens), h.score) for h in hyps] for hyps in results]

    def _decode(self, sentences: list[str], n_best: int) -> list[list[Hypothesis]]:
        results = [[Hypothesis(tokens=[], score=0.0)] for _ in sentences]
        encoded = [ids[: self.max_positions - 1] for ids in self.tokenizer.encode_src(sentences)]
        order = length_order(sentences, encoded)
        # CTranslate2 returns one sample per source: n samples are n copies of it, in a row.
        copies = 1 if self.sampling is None else n_best
        width = self.cfg.beam_size if self.sampling is None else n_best
        if self.progress is not None and len(order) < len(sentences):
            self.progress(len(sentences) - len(order))  # blank inputs: done without a search
        for batch in budget_batches(order, encoded, width, self.cfg.max_tokens):
            pieces = [
                self.tokenizer.src_id_to_piece(encoded[i]) for i in batch for _ in range(copies)
            ]
            limit = self._max_length(encoded[batch[0]])  # batch[0] is the longest
            options = self._options(n_best // copies, limit)
            outputs = self.engine.translate_batch(pieces, **options)
            for row, i in enumerate(batch):
                own = self._max_length(encoded[i])  # cut to the sentence's own limit
                results[i] = [
                    Hypothesis(tokens=[self._piece_ids[p] for p in tokens[:own]], score=score)
                    for output in outputs[row * copies : (row + 1) * copies]
                    for tokens, score in zip(output.hypotheses, output.scores, strict=True)
                ]
            if self.progress is not None:
                self.progress(len(batch))
        return results

    def _max_length(self, longest: list[int]) -> int:
        """The limit of the batch's longest source: a * |src| + b grows with |src|."""
        src_ids = torch.ones(1, len(longest) + 1, dtype=torch.long)  # (1, S): pieces + EOS
        limit = max_output_lengths(
            src_ids, -1, self.cfg.max_len_a, self.cfg.max_len_b, self.max_positions
        )
        return int(limit[0])

    def _options(self, n_best: int, max_length: int) -> dict:
        options = {
            "max_decoding_length": max_length,
            "min_decoding_length": 1,
            "suppress_sequences": _NEVER,
            "num_hypotheses": n_best,
            "return_scores": True,
            "max_input_length": 0,  # sources are already cut to the positional table
        }
        if self.sampling is None:
            options |= {"beam_size": self.cfg.beam_size, "length_penalty": self.cfg.length_penalty}
            return options
        return options | {
            "beam_size": 1,
            "sampling_topk": self.sampling.top_k,
            "sampling_topp": self.sampling.top_p,
            "sampling_temperature": self.sampling.temperature,
        }
