"""checkpoint: atomic save, unwrapping DDP/compiled models, averaging, clear errors for bad files,
and a save/load round trip that rebuilds the same model from the checkpoint alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from tiny import SENTENCES, tiny_assets, tiny_model, write_checkpoint
from torch import nn

from transformer.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    average_checkpoints,
    load_checkpoint,
    load_for_inference,
    run_config_from_checkpoint,
    save_checkpoint,
    unwrap_model,
)
from transformer.run.lookup import resolve_checkpoint


def _state(weights: dict[str, torch.Tensor]) -> dict:
    """The smallest dict `load_checkpoint` accepts, around the model weights `weights`."""
    return {"model": weights, "config": {}, "tokenizer": {}, "format_version": FORMAT_VERSION}


def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state({"w": torch.ones(3)}))

    def crash_midway(obj: object, handle: object) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state({"w": torch.zeros(3)}))
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [path]
    torch.testing.assert_close(load_checkpoint(path)["model"]["w"], torch.ones(3))


@pytest.fixture
def one_process_group(tmp_path: Path) -> object:
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _ddp(model: nn.Module) -> nn.Module:
    return nn.parallel.DistributedDataParallel(model)


@pytest.mark.usefixtures("one_process_group")
@pytest.mark.parametrize(
    "wrap",
    [_ddp, torch.compile, lambda m: torch.compile(_ddp(m))],
    ids=["ddp", "compile", "compile-ddp"],
)
def test_unwrap_model_returns_the_inner_module(wrap: Callable[[nn.Module], nn.Module]) -> None:
    model = tiny_model()
    wrapped = wrap(model)  # torch.compile only wraps here; nothing is compiled until a call
    assert wrapped is not model
    assert set(wrapped.state_dict()) != set(model.state_dict())  # the wrapper adds prefixes
    assert unwrap_model(wrapped) is model
    keys = list(unwrap_model(wrapped).state_dict())
    assert keys == list(model.state_dict())
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in keys)


def test_average_of_two_checkpoints(tmp_path: Path) -> None:
    a = {"w": torch.randn(4, 3), "h": torch.randn(5).half(), "n": torch.tensor([7, 1])}
    b = {"w": torch.randn(4, 3), "h": torch.randn(5).half(), "n": torch.tensor([9, 9])}
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path, weights in zip(paths, (a, b), strict=True):
        save_checkpoint(path, _state(weights))
    averaged = average_checkpoints(paths)
    assert averaged.keys() == a.keys()
    torch.testing.assert_close(averaged["w"], (a["w"] + b["w"]) / 2, rtol=0, atol=1e-6)
    assert averaged["h"].dtype == torch.float16
    expected_h = ((a["h"].float() + b["h"].float()) / 2).half()
    torch.testing.assert_close(averaged["h"], expected_h, rtol=0, atol=0)
    assert averaged["n"].dtype == torch.int64 and averaged["n"].tolist() == [7, 1]  # copied

    save_checkpoint(tmp_path / "c.pt", _state({"w": a["w"], "h": a["h"]}))
    with pytest.raises(CheckpointError, match="different parameters"):
        average_checkpoints([paths[0], tmp_path / "c.pt"])
    with pytest.raises(CheckpointError):
        average_checkpoints([])


def _truncated(path: Path) -> None:
    save_checkpoint(path, _state({"w": torch.randn(64, 64)}))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda path: None, "does not exist"),
        (_truncated, "could not be read"),
        (lambda path: torch.save([torch.ones(2)], path), "not a dict"),
        (lambda path: torch.save({"model": {}, "config": {}}, path), "lacks tokenizer"),
    ],
    ids=["missing", "truncated", "not-a-dict", "lacks-keys"],
)
def test_bad_files_raise_checkpoint_error_naming_the_path(
    tmp_path: Path, write: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / "bad.pt"
    write(path)
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_load_for_inference_rebuilds_the_same_model(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    path = write_checkpoint(tmp_path / "last.pt", model, tokenizer, cfg)
    loaded, loaded_tokenizer, loaded_cfg = load_for_inference(path, torch.device("cpu"))
    assert loaded_cfg == cfg and not loaded.training
    src = tokenizer.encode_src(SENTENCES)
    assert loaded_tokenizer.encode_src(SENTENCES) == src
    src_ids = torch.tensor([src[0] + [3]])  # (1, S)
    tgt_in = torch.tensor([[2, *src[1]]])  # (1, T)
    with torch.no_grad():
        assert torch.equal(loaded(src_ids, tgt_in), model(src_ids, tgt_in))


@pytest.mark.parametrize("section", ["model", None])
def test_unknown_config_keys_raise_checkpoint_error(
    tiny_parallel_corpus: dict[str, Path], section: str | None
) -> None:
    config = dataclasses.asdict(tiny_assets(tiny_parallel_corpus)[2])
    (config[section] if section else config)["n_experts"] = 8
    with pytest.raises(CheckpointError, match="n_experts"):
        run_config_from_checkpoint({"config": config})


def test_a_run_folder_resolves_to_final_then_best_then_last(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    with pytest.raises(CheckpointError, match="without final.pt, best.pt or last.pt"):
        resolve_checkpoint(tmp_path / "run")
    for name in ("last.pt", "best.pt", "final.pt"):
        (folder / name).touch()
        for given in (tmp_path / "run", folder):  # the run folder or its checkpoints/ folder
            assert resolve_checkpoint(given) == folder / name
    assert resolve_checkpoint(folder / "last.pt") == folder / "last.pt"  # files are kept
    assert resolve_checkpoint(tmp_path / "no.pt") == tmp_path / "no.pt"  # load_checkpoint names it


def test_a_removed_config_key_is_ignored_with_a_warning(
    tiny_parallel_corpus: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Checkpoints of older versions carry train.num_workers, which did nothing: they still load."""
    cfg = tiny_assets(tiny_parallel_corpus)[2]
    config = dataclasses.asdict(cfg)
    config["train"]["num_workers"] = 4
    assert run_config_from_checkpoint({"config": config}) == cfg
    assert "ignoring train.num_workers" in caplog.text
