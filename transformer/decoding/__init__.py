"""Search over a trained model: batched greedy and beam search, and a text-in/text-out Translator.

`greedy.py` and `beam.py` work on id tensors and import only the model side; `translator.py` adds
the tokenizer (text in, text out). Special ids reach the searches as ints (`bos_id`, `eos_id`
keyword arguments whose defaults are the ids `transformer.data.tokenizer` defines; the import
direction keeps `data/` out of the searches, and a test checks that the two agree).

Dims legend: B sentences, S source length, T target length, D d_model, V vocabulary, K beam.
"""

from __future__ import annotations

from transformer.decoding.beam import Hypothesis, beam_search
from transformer.decoding.greedy import greedy_search

__all__ = ["Hypothesis", "beam_search", "greedy_search"]
