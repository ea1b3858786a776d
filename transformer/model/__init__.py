"""The encoder-decoder Transformer (Vaswani et al., 2017): masks, attention, layers, the model.

Dims legend used in shape comments throughout this package:
    B  batch (sentences; B*K rows during beam search)
    S  source length
    T  target length (t: positions decoded so far, in the cache)
    D  d_model
    H  attention heads
    Dh head dim (D / H)
    F  feed-forward width (d_ff)
    V  vocabulary size
    K  beam size
    L  layers

Masks are boolean with True = may be attended (the sense of F.scaled_dot_product_attention),
built only in `masks.py`.
"""

from __future__ import annotations

from transformer.model.cache import DecoderCache, LayerCache
from transformer.model.transformer import Seq2SeqTransformer, build_model

__all__ = ["DecoderCache", "LayerCache", "Seq2SeqTransformer", "build_model"]
