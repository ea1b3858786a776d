"""The seq2seq model: causality, padding invariance, cached decoding, tying, sizes, learning."""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.testing import assert_close

from transformer.config import ModelConfig
from transformer.model import Seq2SeqTransformer, build_model

PAD, BOS, EOS = 0, 2, 3
V = 24
TOL = {"atol": 1e-5, "rtol": 1e-5}
MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"


def tiny_config(**overrides: object) -> ModelConfig:
    """configs/model/tiny.yaml, dropout 0, with overrides."""
    values = yaml.safe_load((MODEL_CONFIGS / "tiny.yaml").read_text()) | {"dropout": 0.0}
    return ModelConfig(**(values | overrides))


def tiny_model(**overrides: object) -> Seq2SeqTransformer:
    return build_model(tiny_config(**overrides), V, V, PAD).eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """src (3, 7) = tokens + EOS, right-padded; tgt_in (3, 6) = BOS + tokens, right-padded."""
    src = torch.randint(4, V, (3, 7))
    src[:, -1] = EOS
    src[1, 4], src[1, 5:] = EOS, PAD
    tgt_in = torch.randint(4, V, (3, 6))
    tgt_in[:, 0] = BOS
    tgt_in[2, 3:] = PAD
    return src, tgt_in


@pytest.mark.parametrize("norm_placement", ["post", "pre"])
def test_future_target_tokens_do_not_change_earlier_logits(norm_placement: str) -> None:
    model = tiny_model(norm_placement=norm_placement)
    src, tgt_in = padded_batch()
    tgt_in[2, 3:] = 5  # no padding here: every position is real
    logits = model(src, tgt_in)
    for t in range(tgt_in.size(1) - 1):
        changed = tgt_in.clone()
        changed[:, t + 1 :] = torch.randint(4, V, changed[:, t + 1 :].shape)
        assert_close(model(src, changed)[:, : t + 1], logits[:, : t + 1], **TOL)
        assert not torch.allclose(model(src, changed)[:, t + 1 :], logits[:, t + 1 :])


@pytest.mark.parametrize("norm_placement", ["post", "pre"])
def test_extra_padding_changes_no_real_output(norm_placement: str) -> None:
    model = tiny_model(norm_placement=norm_placement)
    src, tgt_in = padded_batch()
    logits = model(src, tgt_in)
    assert torch.isfinite(logits).all()  # padded query rows included
    more_src = F.pad(src, (0, 4), value=PAD)
    more_tgt = F.pad(tgt_in, (0, 3), value=PAD)
    real = tgt_in != PAD
    assert_close(model(more_src, tgt_in)[real], logits[real], **TOL)
    assert_close(model(src, more_tgt)[:, :6][real], logits[real], **TOL)
    memory = model.encode(src)
    assert_close(model.encode(more_src)[:, :7][src != PAD], memory[src != PAD], **TOL)


@pytest.mark.parametrize(
    ("norm_placement", "positional"),
    [("post", "sinusoidal"), ("pre", "sinusoidal"), ("post", "learned")],
)
def test_cached_decoding_equals_full_decoding(norm_placement: str, positional: str) -> None:
    model = tiny_model(norm_placement=norm_placement, positional=positional)
    src, tgt_in = padded_batch()
    tgt_in[2, 3:] = 7
    full = model(src, tgt_in)  # (B, T, V)
    cache = model.init_cache(model.encode(src), src)
    for t in range(tgt_in.size(1)):
        assert cache.step == t
        logits, cache = model.decode_step(tgt_in[:, t : t + 1], cache)
        assert_close(logits, full[:, t], **TOL)
    assert cache.layers[0].self_k.shape[2] == tgt_in.size(1)


def test_encoder_keys_and_values_are_projected_once_per_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny_model()
    src, tgt_in = padded_batch()
    calls = []
    for layer in model.decoder.layers:
        cross = layer.cross_attn
        monkeypatch.setattr(cross, "project_kv", _counting(cross.project_kv, calls))
    cache = model.init_cache(model.encode(src), src)
    assert len(calls) == len(model.decoder.layers)
    for t in range(tgt_in.size(1)):
        _, cache = model.decode_step(tgt_in[:, t : t + 1], cache)
    cache = cache.reorder(torch.tensor([1, 1, 0]))
    model.decode_step(tgt_in[[1, 1, 0], :1], cache)
    assert len(calls) == len(model.decoder.layers)  # steps and reordering project nothing


def _counting(fn: Callable, calls: list[int]) -> Callable:
    def wrapped(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return fn(*args, **kwargs)

    return wrapped


def test_cache_reorder_equals_decoding_reordered_inputs() -> None:
    model = tiny_model()
    src, tgt_in = padded_batch()
    tgt_in[2, 3:] = 7  # the cache holds real tokens only
    index = torch.tensor([2, 0, 0, 1])
    cache = model.init_cache(model.encode(src), src)
    for t in range(3):
        _, cache = model.decode_step(tgt_in[:, t : t + 1], cache)
    cache = cache.reorder(index)
    assert cache.step == 3
    logits, _ = model.decode_step(tgt_in[index, 3:4], cache)
    expected = model(src[index], tgt_in[index, :4])[:, 3]
    assert_close(logits, expected, **TOL)


def test_cross_attention_weights_are_distributions_over_real_source() -> None:
    model = tiny_model()
    src, tgt_in = padded_batch()
    weights = model.cross_attention_weights(src, tgt_in)
    cfg = tiny_config()
    assert weights.shape == (cfg.n_decoder_layers, 3, cfg.n_heads, 6, 7)
    assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), **TOL)
    assert (weights[:, 1, :, :, 5:] == 0).all()


def test_shared_and_tied_embeddings_are_one_parameter() -> None:
    model = build_model(tiny_config(share_embeddings=True, tie_output=True), V, V, PAD)
    weight = model.src_embed.tokens.weight
    assert model.tgt_embed.tokens.weight is weight
    assert model.output_proj.weight is weight
    assert model.output_proj.bias is None
    assert (weight[PAD] == 0).all()


def test_untied_model_has_separate_embeddings_and_output_bias() -> None:
    model = build_model(tiny_config(share_embeddings=False, tie_output=False), V, V + 5, PAD)
    assert model.src_vocab_size == V and model.tgt_vocab_size == V + 5
    assert model.tgt_embed.tokens.weight is not model.src_embed.tokens.weight
    assert model.output_proj.weight is not model.tgt_embed.tokens.weight
    assert model.output_proj.bias is not None
    logits = model(torch.randint(4, V, (2, 5)), torch.randint(4, V + 5, (2, 4)))
    assert logits.shape == (2, 4, V + 5)


def test_tie_output_without_sharing_uses_target_embedding() -> None:
    model = build_model(tiny_config(share_embeddings=False, tie_output=True), V, V + 5, PAD)
    assert model.output_proj.weight is model.tgt_embed.tokens.weight


def test_sharing_needs_equal_vocabularies() -> None:
    with pytest.raises(ValueError, match="share_embeddings"):
        build_model(tiny_config(share_embeddings=True), V, V + 1, PAD)


def test_set_dropout_changes_residual_and_embedding_dropout_only() -> None:
    model = build_model(tiny_config(dropout=0.1, attn_dropout=0.05, ff_dropout=0.2), V, V, PAD)
    model.set_dropout(0.3)
    residual = [m.dropout.p for m in (model.src_embed, model.tgt_embed)]
    residual += [layer.dropout.p for layer in [*model.encoder.layers, *model.decoder.layers]]
    assert residual == [0.3] * (2 + 2 + 2)
    layers = [*model.encoder.layers, *model.decoder.layers]
    assert {layer.ff.dropout.p for layer in layers} == {0.2}
    assert {layer.self_attn.attn_dropout for layer in layers} == {0.05}


def test_model_exposes_contract_attributes() -> None:
    model = tiny_model()
    cfg = tiny_config()
    assert (model.pad_id, model.src_vocab_size, model.tgt_vocab_size) == (PAD, V, V)
    assert (model.d_model, model.n_decoder_layers) == (cfg.d_model, cfg.n_decoder_layers)


def test_linear_layers_are_xavier_initialised() -> None:
    model = build_model(tiny_config(d_model=64, n_heads=4), V, V, PAD)
    bound = (6 / (64 + 64)) ** 0.5  # each D x D block of the fused QKV projection
    for block in model.encoder.layers[0].self_attn.qkv_proj.weight.chunk(3):
        assert 0.9 * bound < block.abs().max() <= bound
    fc1 = model.encoder.layers[0].ff.fc1
    assert fc1.weight.abs().max() <= (6 / sum(fc1.weight.shape)) ** 0.5
    assert (fc1.bias == 0).all()


@pytest.mark.parametrize(
    "overrides",
    [
        {"norm_placement": "post"},
        {"norm_placement": "pre", "activation": "gelu"},
        {"positional": "learned", "share_embeddings": False, "tie_output": False},
    ],
)
def test_variants_train_every_parameter(overrides: dict[str, str | bool]) -> None:
    model = build_model(tiny_config(**overrides), V, V, PAD).train()
    src, tgt_in = padded_batch()
    loss = model(src, tgt_in).logsumexp(-1).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    has_final_norm = isinstance(model.decoder.final_norm, torch.nn.LayerNorm)
    assert has_final_norm == (overrides.get("norm_placement") == "pre")


def analytic_param_count(cfg: ModelConfig, vocab_size: int) -> int:
    """Parameters of a post-norm model with one shared, tied vocabulary, from the layer formulas."""
    D, F_ = cfg.d_model, cfg.d_ff
    attention = 4 * (D * D + D)  # W_q, W_k, W_v, W_o with biases
    feed_forward = D * F_ + F_ + F_ * D + D
    layer_norm = 2 * D
    encoder_layer = attention + feed_forward + 2 * layer_norm
    decoder_layer = 2 * attention + feed_forward + 3 * layer_norm
    embedding = vocab_size * D  # shared by source, target and the output projection
    return embedding + cfg.n_encoder_layers * encoder_layer + cfg.n_decoder_layers * decoder_layer


@pytest.mark.parametrize(("name", "low", "high"), [("base", 60e6, 66e6), ("big", 205e6, 220e6)])
def test_paper_model_sizes(name: str, low: float, high: float) -> None:
    values = yaml.safe_load((MODEL_CONFIGS / f"{name}.yaml").read_text())
    cfg = ModelConfig(**values, share_embeddings=True, tie_output=True)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = build_model(cfg, 37000, 37000, PAD)
    n_params = sum(p.numel() for p in model.parameters())
    expected = analytic_param_count(cfg, 37000)
    assert abs(n_params - expected) <= 0.01 * expected
    assert low <= n_params <= high


@pytest.mark.parametrize("path", sorted(MODEL_CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_model_yaml_files_are_valid_configs(path: Path) -> None:
    """Every key is a ModelConfig field (else TypeError), every value has the field's declared
    type (dataclasses do not check it: `d_model: "512"` or `n_heads: 8.0` would pass), and the
    model builds from it with the sizes the file asks for."""
    values = yaml.safe_load(path.read_text())
    cfg = ModelConfig(**values)
    types = typing.get_type_hints(ModelConfig)
    for key, value in values.items():
        allowed = (int, float) if types[key] is float else (types[key],)
        assert type(value) in allowed, f"{path.name}: {key}: {value!r} is not {types[key]}"
    with torch.device("meta"):  # shapes only
        model = build_model(cfg, 100, 100, PAD)
    assert len(model.encoder.layers) == cfg.n_encoder_layers
    assert len(model.decoder.layers) == cfg.n_decoder_layers
    assert model.src_embed.tokens.embedding.weight.shape == (100, cfg.d_model)


def reverse_task_batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random sequences of 3-8 symbols and their reversal: src, tgt_in, tgt_out (padded)."""
    lens = torch.randint(3, 9, (n,), generator=gen).tolist()
    width = max(lens) + 1
    src, tgt_in, tgt_out = (torch.full((n, width), PAD) for _ in range(3))
    for i, length in enumerate(lens):
        tokens = torch.randint(4, 16, (length,), generator=gen)
        src[i, :length], src[i, length] = tokens, EOS
        tgt_in[i, 0], tgt_in[i, 1 : length + 1] = BOS, tokens.flip(0)
        tgt_out[i, :length], tgt_out[i, length] = tokens.flip(0), EOS
    return src, tgt_in, tgt_out


def greedy_decode(model: Seq2SeqTransformer, src: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy search with decode_step: (B, S) -> (B, steps) predicted ids."""
    cache = model.init_cache(model.encode(src), src)
    token = torch.full((src.size(0), 1), BOS)
    predicted = []
    for _ in range(steps):
        logits, cache = model.decode_step(token, cache)
        token = logits.argmax(-1, keepdim=True)  # (B, 1)
        predicted.append(token)
    return torch.cat(predicted, dim=1)


@pytest.mark.slow  # hundreds of training updates
def test_tiny_model_learns_to_reverse_sequences() -> None:
    steps, warmup = 400, 50
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model is overhead-bound; extra threads only contend
    try:
        # Wider than tiny.yaml: it learns in half the steps, for less time overall.
        model = build_model(tiny_config(d_model=64, d_ff=128), 16, 16, PAD).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.98))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min((s + 1) / warmup, (steps - s) / (steps - warmup))
        )
        gen = torch.Generator().manual_seed(0)
        for _ in range(steps):
            src, tgt_in, tgt_out = reverse_task_batch(64, gen)
            logits = model(src, tgt_in)
            loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        src, _, tgt_out = reverse_task_batch(200, torch.Generator().manual_seed(1))
        with torch.no_grad():
            predicted = greedy_decode(model, src, tgt_out.size(1))
    finally:
        torch.set_num_threads(threads)
    exact = ((predicted == tgt_out) | (tgt_out == PAD)).all(dim=1).float().mean().item()
    assert loss.item() < 0.05
    assert exact >= 0.99
