"""Our Seq2SeqTransformer described as a CTranslate2 `TransformerSpec` (its Python spec API).

Every tensor of the model's state dict is assigned to one spec variable; a tensor left over, or a
config value without a CTranslate2 counterpart, is an `ExportError` that names it, so a model the
engine cannot express is never exported with silently missing parts.
"""

from __future__ import annotations

import numpy as np
import torch

from transformer.config import ModelConfig
from transformer.errors import UserError
from transformer.model import Seq2SeqTransformer
from transformer.model.embedding import sinusoid_table


class ExportError(UserError):
    """The model has a feature that CTranslate2 cannot express, or ctranslate2 is missing."""


_SUPPORTED = {
    "activation": ("relu", "gelu"),
    "norm_placement": ("post", "pre"),
    "positional": ("sinusoidal", "learned"),
}


def import_ctranslate2():  # noqa: ANN201 (the module, typed only where installed)
    """The ctranslate2 module, or an ExportError saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise ExportError(
            'ctranslate2 is not installed; install the extra: pip install ".[ct2]"'
        ) from None
    return ctranslate2


def check_expressible(cfg: ModelConfig) -> None:
    """Raise ExportError for a config value that CTranslate2's Transformer has no form for."""
    for key, supported in _SUPPORTED.items():
        value = getattr(cfg, key)
        if value not in supported:
            raise ExportError(
                f"model.{key}={value!r}: CTranslate2's Transformer cannot express it (the "
                f"exporter supports {', '.join(supported)}); keep the checkpoint for PyTorch."
            )


class _Weights:
    """The model's state dict, handed out once per tensor (as float32 numpy arrays)."""

    def __init__(self, model: Seq2SeqTransformer) -> None:
        self._left = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        # Tied and shared weights appear under several names; one use consumes them all.
        self._aliases: dict[int, list[str]] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            self._aliases.setdefault(id(param), []).append(name)
        self._params = dict(model.named_parameters(remove_duplicate=False))

    def take(self, name: str) -> np.ndarray:
        tensor = self._left[name] if name in self._left else self._used(name)
        for alias in self._aliases.get(id(self._params.get(name)), [name]):
            self._left.pop(alias, None)
        return tensor.numpy()

    def _used(self, name: str) -> torch.Tensor:
        return self._params[name].detach().float().cpu()

    def check_all_used(self) -> None:
        if self._left:
            raise ExportError(
                f"CTranslate2's Transformer has no place for {', '.join(sorted(self._left))}; "
                "this model cannot be exported (keep the checkpoint for PyTorch)."
            )


def _linear(spec, w: _Weights, prefix: str) -> None:  # noqa: ANN001 (ctranslate2 spec objects)
    spec.weight = w.take(f"{prefix}.weight")
    spec.bias = w.take(f"{prefix}.bias")


def _norm(spec, w: _Weights, prefix: str) -> None:  # noqa: ANN001
    spec.gamma = w.take(f"{prefix}.weight")
    spec.beta = w.take(f"{prefix}.bias")


def _positions(model: Seq2SeqTransformer, side: str, w: _Weights) -> np.ndarray:
    """(max_positions, D) table, position 0 first: ours interleaves sin and cos, so it is given
    explicitly rather than left to CTranslate2's built-in layout."""
    positions = getattr(model, f"{side}_embed").positions
    if hasattr(positions, "weight"):  # learned
        return w.take(f"{side}_embed.positions.weight")
    return sinusoid_table(positions.max_positions, model.d_model).numpy()


def _attention_qkv(spec, w: _Weights, prefix: str) -> None:  # noqa: ANN001
    _linear(spec.linear[0], w, f"{prefix}.qkv_proj")  # fused [q; k; v], CT2's self layout
    _linear(spec.linear[1], w, f"{prefix}.out_proj")


def _cross_attention(spec, w: _Weights, prefix: str, d_model: int) -> None:  # noqa: ANN001
    weight, bias = w.take(f"{prefix}.qkv_proj.weight"), w.take(f"{prefix}.qkv_proj.bias")
    spec.linear[0].weight, spec.linear[0].bias = weight[:d_model], bias[:d_model]  # q
    spec.linear[1].weight, spec.linear[1].bias = weight[d_model:], bias[d_model:]  # [k; v]
    _linear(spec.linear[2], w, f"{prefix}.out_proj")


def _ffn(spec, w: _Weights, prefix: str) -> None:  # noqa: ANN001
    _linear(spec.linear_0, w, f"{prefix}.ff.fc1")
    _linear(spec.linear_1, w, f"{prefix}.ff.fc2")
    _norm(spec.layer_norm, w, f"{prefix}.ff_norm")


def _encoder(spec, model: Seq2SeqTransformer, w: _Weights, pre: bool) -> None:  # noqa: ANN001
    spec.embeddings[0].weight = w.take("src_embed.tokens.embedding.weight")
    spec.position_encodings.encodings = _positions(model, "src", w)
    for i, layer in enumerate(spec.layer):
        prefix = f"encoder.layers.{i}"
        _attention_qkv(layer.self_attention, w, f"{prefix}.self_attn")
        _norm(layer.self_attention.layer_norm, w, f"{prefix}.self_attn_norm")
        _ffn(layer.ffn, w, prefix)
    if pre:
        _norm(spec.layer_norm, w, "encoder.final_norm")


def _decoder(spec, model: Seq2SeqTransformer, w: _Weights, pre: bool) -> None:  # noqa: ANN001
    spec.embeddings.weight = w.take("tgt_embed.tokens.embedding.weight")
    spec.position_encodings.encodings = _positions(model, "tgt", w)
    for i, layer in enumerate(spec.layer):
        prefix = f"decoder.layers.{i}"
        _attention_qkv(layer.self_attention, w, f"{prefix}.self_attn")
        _norm(layer.self_attention.layer_norm, w, f"{prefix}.self_attn_norm")
        _cross_attention(layer.attention, w, f"{prefix}.cross_attn", model.d_model)
        _norm(layer.attention.layer_norm, w, f"{prefix}.cross_attn_norm")
        _ffn(layer.ffn, w, prefix)
    if pre:
        _norm(spec.layer_norm, w, "decoder.final_norm")
    spec.projection.weight = w.take("output_proj.weight")
    bias = model.output_proj.bias
    spec.projection.bias = (
        w.take("output_proj.bias") if bias is not None else np.zeros(model.tgt_vocab_size, "f4")
    )


def build_spec(
    model: Seq2SeqTransformer,
    cfg: ModelConfig,
    src_vocabulary: list[str],
    tgt_vocabulary: list[str],
):  # noqa: ANN201 (a ctranslate2 TransformerSpec)
    """Describe `model` (built from `cfg`) as a CTranslate2 TransformerSpec.

    Args:
        model: the trained model (any device; weights are copied to float32 numpy arrays).
        cfg: its config (architecture switches).
        src_vocabulary: the source pieces in id order (PAD, UNK, BOS, EOS first).
        tgt_vocabulary: the target pieces in id order.

    Raises:
        ExportError: ctranslate2 is missing, or the model has a part CTranslate2 cannot express.
    """
    check_expressible(cfg)
    import_ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec

    pre = cfg.norm_placement == "pre"
    activation = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU}
    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.n_encoder_layers, cfg.n_decoder_layers),
        cfg.n_heads,
        pre_norm=pre,
        activation=activation[cfg.activation],
    )
    weights = _Weights(model)
    _encoder(spec.encoder, model, weights, pre)
    _decoder(spec.decoder, model, weights, pre)
    weights.check_all_used()
    spec.config.layer_norm_epsilon = cfg.layer_norm_eps
    spec.config.add_source_eos = True  # our sources end with EOS
    spec.config.decoder_start_token = "<s>"
    spec.register_source_vocabulary(src_vocabulary)
    spec.register_target_vocabulary(tgt_vocabulary)
    return spec
