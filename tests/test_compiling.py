"""torch.compile for training: no recompilation per batch shape, clear errors when it cannot work.

The compiles run with torch.compile's "eager" backend: TorchDynamo traces and guards the model as
it does for Inductor, so the graphs counted are the ones Inductor would build, in seconds.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from tiny import PAD, tiny_model

from transformer.config import ModelConfig, TrainConfig, TrainRunConfig
from transformer.data.batching import collate
from transformer.model import Seq2SeqTransformer, build_model
from transformer.training import compiling
from transformer.training.compiling import CompileError, compile_for_training, graphs_compiled
from transformer.training.distributed import DistEnv
from transformer.training.session import _wrap
from transformer.training.step import UpdateStep

CPU = torch.device("cpu")


@pytest.fixture
def eager_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile as the project calls it, with the "eager" backend in place of Inductor."""
    real_compile = torch.compile

    def compile_eagerly(module: torch.nn.Module, **options: object) -> torch.nn.Module:
        return real_compile(module, **(options | {"backend": "eager"}))

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    torch._dynamo.reset()


def _batch(B: int, S: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(4, 24, (B, S)), torch.randint(4, 24, (B, T))


def _one_layer_model() -> Seq2SeqTransformer:
    cfg = ModelConfig(
        d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.0
    )
    return build_model(cfg, 24, 24, PAD).train()


def _graphs_for(shapes: list[tuple[int, int, int]]) -> int:
    model = _one_layer_model()
    cfg = TrainRunConfig(train=TrainConfig(compile=True))
    compiled = _wrap(model, cfg, DistEnv(rank=0, world_size=1), CPU)  # the trainer's path
    before = graphs_compiled()
    for B, S, T in shapes:
        src, tgt = _batch(B, S, T)
        logits = compiled(src, tgt)  # (B, T, V)
        torch.testing.assert_close(logits, model(src, tgt))
        logits.sum().backward()
    return graphs_compiled() - before


@pytest.mark.slow  # traces the model with torch.compile
@pytest.mark.usefixtures("eager_backend")
def test_new_batch_shapes_reuse_the_first_graph() -> None:
    # A static first graph would compile again at batch two. (A first batch with S == T would
    # cost one more graph, at the first batch with S != T.)
    shapes = [(3, 9, 5), (4, 7, 7), (5, 6, 8), (2, 11, 3), (6, 4, 4)]
    assert _graphs_for(shapes) == 1


def test_a_missing_c_compiler_names_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CompileError, match=r"C/C\+\+ compiler.*train\.compile=false"):
        compile_for_training(tiny_model(), CPU)


def test_cuda_without_triton_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: False)
    assert any("Triton" in item for item in compiling.missing_for_compile(torch.device("cuda")))


@pytest.mark.slow  # traces the model with torch.compile
def test_a_compiler_failure_in_the_first_update_is_a_compile_error() -> None:
    def broken_backend(graph: torch.fx.GraphModule, inputs: list) -> None:
        raise RuntimeError("Cannot find a working triton installation")

    torch._dynamo.reset()
    model = _one_layer_model()
    step = UpdateStep(
        compile_for_training(model, CPU, backend=broken_backend),
        torch.optim.Adam(model.parameters()),
        torch.amp.GradScaler("cpu", enabled=False),
        smoothing=0.1, pad_id=PAD, device=CPU, precision="fp32", clip_norm=0.0, world_size=1,
    )  # fmt: skip
    batch = collate([[5, 6, 7]], [[8, 9]], [0], PAD)
    with pytest.raises(CompileError, match=r"working triton installation.*train\.compile=false"):
        step([batch], want_grad_norm=False)
