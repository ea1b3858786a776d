"""The training loop on a tiny generated corpus: exact resume (after a stop and after SIGTERM),
checkpoint contents, refusing a foreign checkpoint, stopping rules, signals, starting over."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny import tiny_train_config, write_tiny_parallel_corpus

from transformer.checkpoint import (
    average_checkpoints,
    load_checkpoint,
    load_for_inference,
    run_config_from_checkpoint,
)
from transformer.commands.fork import main as fork_main
from transformer.config import (
    TrainRunConfig,
)
from transformer.data.batching import EncodedPairs
from transformer.data.sampler import TokenBatchSampler
from transformer.data.special import PAD_ID
from transformer.data.vocabulary import DEFAULT_INPUT_SENTENCE_SIZE, resolve_tokenizer_config
from transformer.model import build_model
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.metrics_log import config_hash
from transformer.runtime import describe_hardware
from transformer.training import final, trainer
from transformer.training.setup import BatchStream
from transformer.training.state import Progress, ResumeError, check_resumable
from transformer.training.step import UpdateStep

CONTRACT_KEYS = {
    "model", "optimizer", "scheduler", "scaler", "step", "epoch", "sampler", "rng",
    "best_bleu", "bad_validations", "config", "tokenizer", "format_version",
}  # fmt: skip
N_UPDATES = 12


def make_config(corpus: dict[str, Path], run_dir: Path, **train: object) -> TrainRunConfig:
    """`tiny.tiny_train_config` for N_UPDATES updates."""
    return tiny_train_config(corpus["dir"], run_dir, **{"max_updates": N_UPDATES, **train})


def train_scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """A scalar per update from every TensorBoard event file of the run."""
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


def train_losses(run_dir: Path) -> dict[int, float]:
    """train/loss per update from every TensorBoard event file of the run."""
    return train_scalars(run_dir, "train/loss")


def assert_same_training(reference: Path, other: Path) -> None:
    ref = load_checkpoint(reference / "checkpoints" / "last.pt")
    got = load_checkpoint(other / "checkpoints" / "last.pt")
    assert got["step"] == ref["step"] == N_UPDATES
    assert got["sampler"] == ref["sampler"]
    for name, value in ref["model"].items():
        assert torch.equal(got["model"][name], value), name
    for index, state in ref["optimizer"]["state"].items():
        assert torch.equal(got["optimizer"]["state"][index]["exp_avg_sq"], state["exp_avg_sq"])
    assert train_losses(other) == train_losses(reference)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_parallel_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def reference_run(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of N_UPDATES updates."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    result = trainer.train(make_config(corpus, run_dir))
    assert result["step"] == N_UPDATES and result["stop_reason"] == "max_updates"
    return run_dir


def test_stopped_and_resumed_run_matches_uninterrupted(
    corpus: dict[str, Path], reference_run: Path
) -> None:
    run_dir = reference_run.parent / "stopped"
    first = trainer.train(make_config(corpus, run_dir, max_updates=7))
    assert first["step"] == 7
    second = trainer.train(make_config(corpus, run_dir))  # same command, larger budget
    assert second["step"] == N_UPDATES
    assert second["epoch"] >= 1  # the run crossed an epoch boundary
    assert_same_training(reference_run, run_dir)


def test_sigterm_saves_a_checkpoint_and_resume_is_exact(
    corpus: dict[str, Path], reference_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = reference_run.parent / "terminated"
    original_call = UpdateStep.__call__
    calls = []

    def call_then_terminate(self: UpdateStep, *args: object, **kwargs: object) -> object:
        result = original_call(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would, in mid-training
        return result

    monkeypatch.setattr(UpdateStep, "__call__", call_then_terminate)
    handler_before = signal.getsignal(signal.SIGTERM)
    result = trainer.train(make_config(corpus, run_dir))
    assert result["stop_reason"] == "signal" and result["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is handler_before
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 3
    monkeypatch.setattr(UpdateStep, "__call__", original_call)
    assert trainer.train(make_config(corpus, run_dir))["step"] == N_UPDATES
    assert_same_training(reference_run, run_dir)


def test_late_dropout_starts_after_its_update_also_in_a_resumed_run(
    corpus: dict[str, Path], reference_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    late = dict(late_dropout=0.5, late_dropout_from=7)
    uninterrupted = reference_run.parent / "late-dropout"
    trainer.train(make_config(corpus, uninterrupted, **late))
    reference, losses = train_losses(reference_run), train_losses(uninterrupted)
    assert [losses[s] for s in range(1, 8)] == [reference[s] for s in range(1, 8)]
    assert all(losses[s] != reference[s] for s in range(8, N_UPDATES + 1))
    for stop_at in (7, 9):  # a session ending at the switch, and one ending past it
        run_dir = reference_run.parent / f"late-dropout-stopped-{stop_at}"
        trainer.train(make_config(corpus, run_dir, **late, max_updates=stop_at))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="transformer.training.trainer"):
            trainer.train(make_config(corpus, run_dir, **late))
        assert train_losses(run_dir) == losses
    assert "dropout 0.5 since update 7" in caplog.text  # the resume past the switch says so


@pytest.mark.parametrize("cooldown_updates", [4, 100])
def test_cooldown_lowers_the_rate_of_the_last_updates_to_train_max_updates(
    corpus: dict[str, Path], reference_run: Path, cooldown_updates: int
) -> None:
    run_dir = reference_run.parent / f"cooldown-{cooldown_updates}"
    cfg = make_config(corpus, run_dir)
    optim = dataclasses.replace(cfg.optim, cooldown_updates=cooldown_updates)
    trainer.train(dataclasses.replace(cfg, optim=optim))
    rates, reference = train_scalars(run_dir, "train/lr"), train_scalars(reference_run, "train/lr")
    assert sorted(rates) == list(range(1, N_UPDATES + 1))
    # 4: the last 4 of 12 updates at 4/5, 3/5, 2/5, 1/5; 100: all 12, at 12/13 down to 1/13.
    n = min(cooldown_updates, N_UPDATES)
    for update, rate in rates.items():
        factor = min(1.0, (N_UPDATES + 1 - update) / (n + 1))
        assert rate == pytest.approx(reference[update] * factor, rel=1e-5), update


def test_optim_settings_changed_at_resume_take_effect(
    corpus: dict[str, Path], reference_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = reference_run.parent / "new-optim"
    trainer.train(make_config(corpus, run_dir, max_updates=6))
    cfg = make_config(corpus, run_dir)
    optim = dataclasses.replace(cfg.optim, lr=cfg.optim.lr * 2, adam_beta2=0.9)
    trainer.train(dataclasses.replace(cfg, optim=optim))
    assert "optim.lr: 0.003 -> 0.006" in caplog.text and "optim.adam_beta2" in caplog.text
    rates, reference = train_scalars(run_dir, "train/lr"), train_scalars(reference_run, "train/lr")
    for update in range(1, N_UPDATES + 1):  # inverse_sqrt: the rate scales with the peak
        factor = 1 if update <= 6 else 2
        assert rates[update] == pytest.approx(reference[update] * factor, rel=1e-6), update
    groups = load_checkpoint(run_dir / "checkpoints" / "last.pt")["optimizer"]["param_groups"]
    assert all(group["betas"] == (0.9, 0.9) for group in groups)


def test_a_run_forked_from_an_earlier_update_sets_the_later_ones_aside(
    corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "fork"
    trainer.train(make_config(corpus, run_dir, keep_last=3))  # checkpoints at 5, 10, 12
    folder = run_dir / "checkpoints"
    best = CheckpointDir(folder).best
    assert fork_main([str(run_dir), "--update", "7"]) == 2  # no checkpoint of update 7
    assert "holds no checkpoint of update 7; it holds updates 5, 10, 12" in capsys.readouterr().err
    assert fork_main([str(run_dir), "--update", "10"]) == 0
    assert load_checkpoint(folder / "last.pt")["step"] == 10
    (aside,) = folder.glob("later-than-10.*")
    assert {p.name for p in aside.iterdir()} == {"checkpoint_00000012.pt", "final.pt"}
    result = trainer.train(make_config(corpus, run_dir, keep_last=3, max_updates=11))
    assert result["step"] == 11
    checkpoints = CheckpointDir(folder)
    assert [entry.step for entry in checkpoints.kept] == [5, 10, 11]
    assert checkpoints.best.step in (best.step, 11) and best.step <= 10
    assert load_checkpoint(folder / "final.pt")["step"] == 11


def test_checkpoint_holds_the_contract_keys_and_rebuilds_the_model(
    corpus: dict[str, Path], reference_run: Path
) -> None:
    folder = reference_run / "checkpoints"
    state = load_checkpoint(folder / "last.pt")
    assert CONTRACT_KEYS <= set(state)
    assert state["step"] == N_UPDATES and state["scaler"] is None  # fp32: no scaler
    # The run records the tokenizer sample size it resolved (the default, for a new folder).
    resolved = resolve_tokenizer_config(make_config(corpus, reference_run))
    assert run_config_from_checkpoint(state) == resolved
    assert resolved.tokenizer.input_sentence_size == DEFAULT_INPUT_SENTENCE_SIZE
    # Validations at 5 and 10 and a final one at 12, keep_last=2 of the periodic files; the
    # best one stays too.
    checkpoints = CheckpointDir(folder)
    assert [entry.step for entry in checkpoints.kept] == [10, 12]
    assert checkpoints.last == checkpoints.kept[-1] and state["run_id"] == checkpoints.run_id
    named = {entry.file for entry in [*checkpoints.kept, checkpoints.best]}
    assert {p.name for p in folder.glob("*.pt")} == named | {"last.pt", "best.pt", "final.pt"}
    best = load_checkpoint(folder / "best.pt")
    assert best["best_bleu"] == state["best_bleu"] and math.isfinite(best["best_bleu"])
    # The checkpoint alone rebuilds the model: same outputs as the trained weights.
    model, tokenizer, _ = load_for_inference(folder / "last.pt", torch.device("cpu"))
    cfg = make_config(corpus, reference_run)
    twin = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    twin.load_state_dict(state["model"])
    src = torch.tensor([tokenizer.encode_src(["A red dog runs."])[0] + [3]])
    tgt = torch.tensor([[2] + tokenizer.encode_tgt(["Ein rot hund rennt."])[0]])
    torch.testing.assert_close(model(src, tgt), twin.eval()(src, tgt))


def test_tensorboard_has_training_and_validation_scalars(reference_run: Path) -> None:
    events = EventAccumulator(str(reference_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"train/loss", "train/ppl", "train/lr", "train/grad_norm", "train/tokens_per_s"}
    assert expected | {"valid/loss", "valid/ppl", "valid/bleu"} <= tags
    assert [e.step for e in events.Scalars("valid/bleu")] == [5, 10, 12]
    assert "valid/samples/text_summary" in events.Tags()["tensors"]
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses[-1] < losses[0]  # it learns


def test_refuses_to_resume_a_run_with_another_model(
    corpus: dict[str, Path], reference_run: Path
) -> None:
    cfg = make_config(corpus, reference_run)
    cfg.model = dataclasses.replace(cfg.model, d_model=24, n_heads=2)
    cfg.tokenizer = dataclasses.replace(cfg.tokenizer, vocab_size=40)
    with pytest.raises(ResumeError, match=r"model\.d_model: 16.*24") as error:
        trainer.train(cfg)
    assert "tokenizer.vocab_size" in str(error.value)
    assert "train.resume=false" in str(error.value)


def test_early_stopping_after_patience_validations_without_gain(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    cfg = make_config(corpus, tmp_path / "run", validate_every=1, patience=2, max_updates=50)
    cfg.optim = dataclasses.replace(cfg.optim, lr=1e-12)  # frozen: BLEU cannot improve
    result = trainer.train(cfg)
    assert result["stop_reason"] == "early stopping"
    assert result["step"] == 3  # best at 1, then 2 validations without gain
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["bad_validations"] == 2


def test_progress_tracks_best_and_patience() -> None:
    progress = Progress()
    assert [progress.record(bleu, 1.0) for bleu in (3.0, 5.0, 5.0, 4.0, 6.0)] == [
        True, True, False, False, True,
    ]  # fmt: skip
    assert (progress.best_bleu, progress.bad_validations) == (6.0, 0)
    by_loss = Progress()
    assert [by_loss.record(None, loss) for loss in (3.0, 2.0, 2.5)] == [True, True, False]
    assert (by_loss.best_loss, by_loss.bad_validations) == (2.0, 1)


def test_batch_stream_runs_max_epochs_then_stops() -> None:
    lengths = [3, 5, 4, 6, 2, 7, 5, 3]
    sampler = TokenBatchSampler(lengths, lengths, 12, seed=0)
    rows = [[4] * (n - 1) for n in lengths]
    stream = BatchStream(EncodedPairs.from_lists(rows, rows), sampler, PAD_ID, max_epochs=2)
    seen = []
    while batches := stream.take(3):  # updates of 3 micro-batches, across the epoch boundary
        seen.extend(row for batch in batches for row in batch.indices.tolist())
    assert sorted(seen) == sorted(list(range(len(lengths))) * 2)  # every row, twice
    assert stream.epoch == 1 and stream.take(1) == []


def test_wall_time_limit_stops_training(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_call = UpdateStep.__call__

    def slow_call(self: UpdateStep, *args: object, **kwargs: object) -> object:
        time.sleep(0.4)
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(UpdateStep, "__call__", slow_call)
    cfg = make_config(corpus, tmp_path / "run", max_updates=50, max_time_minutes=0.01)  # 0.6 s
    result = trainer.train(cfg)
    assert result["stop_reason"] == "max_time_minutes" and 1 <= result["step"] <= 3
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == result["step"]


def test_resume_false_starts_over_and_sets_the_old_run_aside(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    assert trainer.train(make_config(corpus, run_dir, max_updates=3))["step"] == 3
    again = trainer.train(make_config(corpus, run_dir, max_updates=2, resume=False))
    assert again["step"] == 2  # from scratch, not from update 3
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 2
    (old,) = run_dir.glob("checkpoints.replaced-*")
    assert load_checkpoint(old / "last.pt")["step"] == 3
    assert len(list(run_dir.glob("tensorboard.replaced-*"))) == 1
    (old_tokenizer,) = run_dir.glob("tokenizer.replaced-*")  # the fresh run trained its own
    assert {p.name for p in old_tokenizer.iterdir()} == {"tokenizer.json", "spm.model"}
    assert (run_dir / "tokenizer.json").is_file() and (run_dir / "spm.model").is_file()


def test_rerunning_a_run_finished_on_max_epochs_trains_nothing(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    first = trainer.train(make_config(corpus, run_dir, max_updates=0, max_epochs=1))
    assert first["stop_reason"] == "max_epochs" and first["step"] > 0
    last = run_dir / "checkpoints" / "last.pt"
    saved = last.read_bytes()
    again = trainer.train(make_config(corpus, run_dir, max_updates=0, max_epochs=1))
    assert again["stop_reason"] == "max_epochs" and again["step"] == first["step"]
    assert last.read_bytes() == saved


def test_changed_loop_settings_on_resume_are_named_in_a_warning(
    corpus: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored, path = dataclasses.asdict(make_config(corpus, tmp_path)), tmp_path / "last.pt"
    check_resumable(stored, make_config(corpus, tmp_path), path)
    assert "bit-identical" not in caplog.text
    check_resumable(
        stored, make_config(corpus, tmp_path, max_tokens=128, seed=5, accum_steps=1), path
    )
    for text in ("train.max_tokens: 96 -> 128", "train.seed: 1 -> 5", "train.accum_steps: 2 -> 1"):
        assert text in caplog.text
    assert "not be bit-identical" in caplog.text


def test_sigint_saves_and_the_final_steps_run_without_the_stop_handler(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_call, original_finish = UpdateStep.__call__, trainer._finish
    handlers_in_finish = []

    def call_then_interrupt(self: UpdateStep, *args: object, **kwargs: object) -> object:
        result = original_call(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
        return result

    def finish(*args: object) -> object:
        handlers_in_finish.append(signal.getsignal(signal.SIGINT))
        return original_finish(*args)

    monkeypatch.setattr(UpdateStep, "__call__", call_then_interrupt)
    monkeypatch.setattr(trainer, "_finish", finish)
    handler_before = signal.getsignal(signal.SIGINT)
    result = trainer.train(make_config(corpus, tmp_path / "run"))
    assert result["stop_reason"] == "signal" and result["step"] == 1
    assert result["stop_signal"] == signal.SIGINT  # the entry point exits 128 + 2
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 1
    assert handlers_in_finish == [handler_before]  # Ctrl-C now interrupts the final decode


def _weights_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_final_model_without_averaging_is_best_pt(reference_run: Path) -> None:
    folder = reference_run / "checkpoints"
    final, best = load_checkpoint(folder / "final.pt"), load_checkpoint(folder / "best.pt")
    assert _weights_equal(final["model"], best["model"])
    assert final["description"] == f"best.pt (update {best['step']})"
    assert final["step"] == N_UPDATES and "optimizer" not in final
    model, _, cfg = load_for_inference(folder / "final.pt", torch.device("cpu"))
    assert cfg.model == make_config({"dir": Path()}, reference_run).model


@pytest.mark.parametrize(
    ("criterion", "average_validates_better"), [("bleu", True), ("bleu", False), ("loss", True)]
)
def test_final_model_is_the_average_unless_best_pt_validates_better(
    corpus: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    criterion: str,
    average_validates_better: bool,
) -> None:
    real_validate = final.validate

    def validate(*args: object, **kwargs: object) -> object:  # the averaged model's validation
        report = real_validate(*args, **kwargs)
        if criterion == "bleu":
            report.bleu.metrics.bleu = 1e3 if average_validates_better else -1.0
        else:
            report.loss.loss = -1.0 if average_validates_better else 1e3
        return report

    monkeypatch.setattr(final, "validate", validate)
    run_dir = tmp_path / "run"
    caplog.set_level(logging.INFO)
    cfg = make_config(
        corpus, run_dir, average_last=2, evaluate_test=True, validate_bleu=criterion == "bleu"
    )
    result = trainer.train(cfg)
    folder = run_dir / "checkpoints"
    chosen = load_checkpoint(folder / "final.pt")
    if average_validates_better:  # validations at updates 5, 10 and 12; the last 2 are kept
        kept = [folder / "checkpoint_00000010.pt", folder / "checkpoint_00000012.pt"]
        assert _weights_equal(chosen["model"], average_checkpoints(kept))
        assert chosen["description"] == "average of 2 checkpoints (updates 10, 12)"
    else:
        best = load_checkpoint(folder / "best.pt")
        assert _weights_equal(chosen["model"], best["model"])
        assert chosen["description"] == f"best.pt (update {best['step']})"
    assert f"saved {folder / 'final.pt'}: {chosen['description']}" in caplog.text
    assert f", {chosen['description']}):" in caplog.text  # the test split decoded with it
    assert math.isfinite(result["test_bleu"])


def test_new_updates_remove_final_pt_and_a_signal_stopped_run_can_be_finished(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    final_pt = run_dir / "checkpoints" / "final.pt"
    trainer.train(make_config(corpus, run_dir, max_updates=7))
    assert load_checkpoint(final_pt)["step"] == 7
    original_call = UpdateStep.__call__

    def call_then_terminate(self: UpdateStep, *args: object, **kwargs: object) -> object:
        result = original_call(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(UpdateStep, "__call__", call_then_terminate)
    result = trainer.train(make_config(corpus, run_dir))  # resumed for more, stopped at once
    assert result["stop_reason"] == "signal" and result["step"] == 8
    assert not final_pt.exists()  # it no longer holds the run's result
    monkeypatch.setattr(UpdateStep, "__call__", original_call)
    result = trainer.train(make_config(corpus, run_dir, max_updates=8))  # finish where it stopped
    assert result["stop_reason"] == "max_updates" and math.isfinite(result["valid_loss"])
    assert (run_dir / "checkpoints" / "checkpoint_00000008.pt").is_file()  # validated at 8
    assert load_checkpoint(final_pt)["step"] == 8


def test_metrics_jsonl_records_each_session_its_training_validations_and_stop(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    trainer.train(make_config(corpus, run_dir, max_updates=5, log_every=2))
    resumed = make_config(corpus, run_dir, max_updates=6, log_every=2)
    trainer.train(resumed)
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(e["event"], e["update"]) for e in events] == [
        ("start", 0), ("train", 2), ("train", 4), ("validation", 5), ("stop", 5),
        ("start", 5), ("train", 6), ("stop", 6), ("validation", 6),  # the final validation
    ]  # fmt: skip
    start, train, validation, stop = events[5], events[6], events[3], events[7]
    assert start["hardware"] == describe_hardware(torch.device("cpu"))
    assert start["config_hash"] == config_hash(resolve_tokenizer_config(resumed))  # as it ran
    assert train["loss"] == pytest.approx(train_losses(run_dir)[6])
    assert {"epoch", "ppl", "lr", "grad_norm", "tokens_per_s"} <= set(train)
    assert set(validation) >= {"valid_loss", "valid_ppl", "valid_bleu"} and validation["best"]
    assert stop["reason"] == "max_updates" and 0 < stop["wall_seconds"] < 600
