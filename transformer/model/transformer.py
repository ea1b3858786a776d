"""Encoder and decoder stacks, the encoder-decoder model, weight tying and `build_model`."""

from __future__ import annotations

import logging
from typing import TypeVar

import torch
from torch import nn

from transformer.config import ModelConfig
from transformer.model.attention import MultiHeadAttention
from transformer.model.cache import DecoderCache
from transformer.model.embedding import (
    InputEmbedding,
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
)
from transformer.model.layers import DecoderLayer, EncoderLayer
from transformer.model.masks import padding_mask, target_mask

logger = logging.getLogger(__name__)

_LayerT = TypeVar("_LayerT", EncoderLayer, DecoderLayer)


class Encoder(nn.Module):
    """A stack of encoder layers, with a final LayerNorm for pre-norm.

    Args:
        layers: the encoder layers.
        final_norm: LayerNorm (pre-norm) or nn.Identity (post-norm).
    """

    def __init__(self, layers: list[EncoderLayer], final_norm: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = final_norm

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, S, D) embedded source, (B, 1, 1, S) bool mask or None -> memory (B, S, D)."""
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.final_norm(x)


class Decoder(nn.Module):
    """A stack of decoder layers, with a final LayerNorm for pre-norm.

    Args:
        layers: the decoder layers.
        final_norm: LayerNorm (pre-norm) or nn.Identity (post-norm).
    """

    def __init__(self, layers: list[DecoderLayer], final_norm: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = final_norm

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None,
        src_mask: torch.Tensor | None,
        *,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """(B, T, D) embedded target, memory (B, S, D), masks -> (B, T, D) (see DecoderLayer)."""
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, src_mask, is_causal=is_causal)
        return self.final_norm(x)

    def step(self, x: torch.Tensor, cache: DecoderCache) -> tuple[torch.Tensor, DecoderCache]:
        """(B, 1, D) embedded newest token and the cache -> (B, 1, D) and the grown cache."""
        layer_caches = []
        for layer, layer_cache in zip(self.layers, cache.layers, strict=True):
            x, layer_cache = layer.step(x, layer_cache, cache.src_mask)
            layer_caches.append(layer_cache)
        return self.final_norm(x), DecoderCache(layer_caches, cache.src_mask, cache.step + 1)


class Seq2SeqTransformer(nn.Module):
    """The encoder-decoder Transformer; returns logits, never losses.

    Args:
        src_embed: source InputEmbedding.
        tgt_embed: target InputEmbedding (may share its TokenEmbedding with src_embed).
        encoder: the encoder stack.
        decoder: the decoder stack.
        output_proj: Linear(D, V) (its weight may be the target embedding's).
        pad_id: id of the padding token on both sides.
    """

    def __init__(
        self,
        src_embed: InputEmbedding,
        tgt_embed: InputEmbedding,
        encoder: Encoder,
        decoder: Decoder,
        output_proj: nn.Linear,
        *,
        pad_id: int,
    ) -> None:
        super().__init__()
        self.src_embed = src_embed
        self.tgt_embed = tgt_embed
        self.encoder = encoder
        self.decoder = decoder
        self.output_proj = output_proj
        self.pad_id = pad_id
        self.src_vocab_size = src_embed.tokens.embedding.num_embeddings
        self.tgt_vocab_size = output_proj.out_features
        self.d_model = output_proj.in_features
        self.n_decoder_layers = len(decoder.layers)

    @property
    def max_positions(self) -> int:
        """The longest sequence the positional encodings cover (source and target)."""
        return min(self.src_embed.positions.max_positions, self.tgt_embed.positions.max_positions)

    def encode(self, src_ids: torch.Tensor) -> torch.Tensor:
        """Source ids (B, S) int64 (pieces + EOS, right-padded) -> memory (B, S, D)."""
        return self.encoder(self.src_embed(src_ids), padding_mask(src_ids, self.pad_id))

    def decode(
        self, tgt_in_ids: torch.Tensor, memory: torch.Tensor, src_ids: torch.Tensor
    ) -> torch.Tensor:
        """Logits for all target positions, causal (teacher forcing).

        Args:
            tgt_in_ids: (B, T) int64, BOS + pieces, right-padded.
            memory: (B, S, D) encoder output.
            src_ids: (B, S) int64 source ids (for the source padding mask).

        Returns:
            (B, T, V) logits.
        """
        x = self.tgt_embed(tgt_in_ids)  # (B, T, D)
        tgt_mask = target_mask(tgt_in_ids, self.pad_id)  # (B, 1, T, T)
        src_mask = padding_mask(src_ids, self.pad_id)  # (B, 1, 1, S)
        x = self.decoder(x, memory, tgt_mask, src_mask)  # (B, T, D)
        return self.output_proj(x)  # (B, T, V)

    def forward(self, src_ids: torch.Tensor, tgt_in_ids: torch.Tensor) -> torch.Tensor:
        """Source (B, S) and target input (B, T) int64 ids -> logits (B, T, V)."""
        return self.decode(tgt_in_ids, self.encode(src_ids), src_ids)

    def init_cache(self, memory: torch.Tensor, src_ids: torch.Tensor) -> DecoderCache:
        """Start incremental decoding: cross-attention K/V of every layer projected once.

        Args:
            memory: (B, S, D) encoder output.
            src_ids: (B, S) int64 source ids.

        Returns:
            A DecoderCache at step 0 (no target positions yet).
        """
        layers = [layer.init_cache(memory) for layer in self.decoder.layers]
        return DecoderCache(layers, padding_mask(src_ids, self.pad_id), step=0)

    def decode_step(
        self, tgt_ids: torch.Tensor, cache: DecoderCache
    ) -> tuple[torch.Tensor, DecoderCache]:
        """Decode one position: the newest token at position cache.step.

        Args:
            tgt_ids: (B, 1) int64 newest target token (BOS at step 0).
            cache: the DecoderCache from init_cache or the previous decode_step.

        Returns:
            (B, V) logits for the next token and the cache grown by one position.
        """
        x = self.tgt_embed(tgt_ids, offset=cache.step)  # (B, 1, D)
        x, cache = self.decoder.step(x, cache)  # (B, 1, D)
        return self.output_proj(x[:, 0]), cache  # (B, V)

    def set_dropout(self, p: float) -> None:
        """Set the residual and embedding dropout (the paper's P_drop, `model.dropout`) to p.

        Attention-weight and feed-forward dropout keep their values.
        """
        for module in self.modules():
            if isinstance(module, (InputEmbedding, EncoderLayer, DecoderLayer)):
                module.dropout.p = p

    def cross_attention_weights(
        self, src_ids: torch.Tensor, tgt_in_ids: torch.Tensor
    ) -> torch.Tensor:
        """Cross-attention weights of every decoder layer (reference path, for plots).

        Args:
            src_ids: (B, S) int64 source ids.
            tgt_in_ids: (B, T) int64 target input ids.

        Returns:
            (L, B, H, T, S) weights; each row sums to 1 over real source positions.
        """
        memory = self.encode(src_ids)  # (B, S, D)
        x = self.tgt_embed(tgt_in_ids)  # (B, T, D)
        tgt_mask = target_mask(tgt_in_ids, self.pad_id)  # (B, 1, T, T)
        src_mask = padding_mask(src_ids, self.pad_id)  # (B, 1, 1, S)
        weights = []
        for layer in self.decoder.layers:
            x, layer_weights = layer.forward_with_cross_weights(x, memory, tgt_mask, src_mask)
            weights.append(layer_weights)  # (B, H, T, S)
        return torch.stack(weights)  # (L, B, H, T, S)


def _init_weights(model: nn.Module, output_proj: nn.Linear, tied: bool) -> None:
    """Xavier-uniform Linear weights (one per W_q, W_k, W_v block of a fused projection), zero
    biases; an untied output projection is initialised like an embedding, normal(0, D^-0.5)."""
    for module in model.modules():
        if isinstance(module, nn.Linear) and not (tied and module is output_proj):
            nn.init.xavier_uniform_(module.weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            for block in module.qkv_proj.weight.chunk(3, dim=0):  # (D, D) views
                nn.init.xavier_uniform_(block)
    if not tied:
        nn.init.normal_(output_proj.weight, mean=0.0, std=output_proj.in_features**-0.5)


def _input_embedding(cfg: ModelConfig, tokens: TokenEmbedding) -> InputEmbedding:
    if cfg.positional == "learned":
        positions = LearnedPositionalEmbedding(cfg.max_positions, cfg.d_model)
    else:
        positions = SinusoidalPositionalEncoding(cfg.max_positions, cfg.d_model)
    return InputEmbedding(tokens, positions, cfg.dropout)


def _layer(cls: type[_LayerT], cfg: ModelConfig) -> _LayerT:
    return cls(
        cfg.d_model,
        cfg.n_heads,
        cfg.d_ff,
        dropout=cfg.dropout,
        attn_dropout=cfg.attn_dropout,
        ff_dropout=cfg.ff_dropout,
        activation=cfg.activation,
        norm_first=cfg.norm_placement == "pre",
        layer_norm_eps=cfg.layer_norm_eps,
    )


def _final_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm_placement == "pre":
        return nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
    return nn.Identity()


def build_model(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, pad_id: int
) -> Seq2SeqTransformer:
    """Build the encoder-decoder model from its config (the one builder).

    Args:
        cfg: architecture and sizes.
        src_vocab_size: source vocabulary size.
        tgt_vocab_size: target vocabulary size.
        pad_id: id of the padding token.

    Returns:
        A freshly initialised Seq2SeqTransformer (in training mode).

    Raises:
        ValueError: model.share_embeddings=true with different vocabulary sizes.
    """
    if cfg.share_embeddings and src_vocab_size != tgt_vocab_size:
        raise ValueError(
            f"model.share_embeddings=true needs one joint vocabulary, but src_vocab_size="
            f"{src_vocab_size} != tgt_vocab_size={tgt_vocab_size}; use a joint tokenizer "
            "(tokenizer.joint=true) or set model.share_embeddings=false."
        )
    D = cfg.d_model
    src_tokens = TokenEmbedding(src_vocab_size, D, pad_id)
    tgt_tokens = src_tokens if cfg.share_embeddings else TokenEmbedding(tgt_vocab_size, D, pad_id)
    encoder_layers = [_layer(EncoderLayer, cfg) for _ in range(cfg.n_encoder_layers)]
    decoder_layers = [_layer(DecoderLayer, cfg) for _ in range(cfg.n_decoder_layers)]
    encoder = Encoder(encoder_layers, _final_norm(cfg))
    decoder = Decoder(decoder_layers, _final_norm(cfg))
    output_proj = nn.Linear(D, tgt_vocab_size, bias=not cfg.tie_output)
    _init_weights(nn.ModuleList([encoder, decoder, output_proj]), output_proj, cfg.tie_output)
    if cfg.tie_output:
        output_proj.weight = tgt_tokens.weight
    model = Seq2SeqTransformer(
        _input_embedding(cfg, src_tokens),
        _input_embedding(cfg, tgt_tokens),
        encoder,
        decoder,
        output_proj,
        pad_id=pad_id,
    )
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built Transformer with %d parameters", n_params)
    return model
