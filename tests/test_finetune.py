"""Fine-tuning (`train.init_from`): a model trained on Multi30k en->de, continued on a small
text-file corpus, fits that corpus better than where it started, keeps its vocabulary byte for
byte, takes dropout but refuses a conflicting model override, and resumes when re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny import CPU, ROOT, tiny_assets, write_checkpoint, write_tiny_parallel_corpus

from transformer.checkpoint import load_checkpoint, load_for_inference
from transformer.data.batching import collate
from transformer.data.special import PAD_ID
from transformer.evaluation.evaluate import text_lines


def _train(run_dir: Path, multi30k: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=smoke",
        f"hydra.run.dir={run_dir}", f"data.cache_dir={run_dir.parent / 'cache'}",
        "train.validate_bleu=false", "train.evaluate_test=false", "train.log_every=10",
        "tokenizer.vocab_size=400", "tokenizer.input_sentence_size=2000", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "MULTI30K_DIR": str(multi30k), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def _loss(checkpoint: Path, corpus: dict[str, Path]) -> float:
    """Mean per-token cross-entropy of a checkpoint's model on the corpus' validation pairs."""
    model, tokenizer, _ = load_for_inference(checkpoint, CPU)
    src = tokenizer.encode_src(text_lines(corpus["valid.en"]))
    tgt = tokenizer.encode_tgt(text_lines(corpus["valid.de"]))
    batch = collate(src, tgt, list(range(len(src))), PAD_ID)
    with torch.no_grad():
        logits = model(batch.src_ids, batch.tgt_in_ids)  # (B, T, V)
    return F.cross_entropy(
        logits.flatten(0, 1), batch.tgt_out_ids.flatten(), ignore_index=PAD_ID
    ).item()


@pytest.mark.slow
def test_fine_tune_on_a_text_corpus_learns_keeps_the_vocabulary_and_resumes(
    multi30k_dir: Path, tmp_path: Path
) -> None:
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    # 32 wide, where the smoke experiment's YAML says 64: a default the fine-tune must not take.
    width = ("model.d_model=32", "model.d_ff=64")
    done = _train(base, multi30k_dir, *width, "train.max_updates=20", "train.max_train_pairs=1000")
    assert done.returncode == 0, done.stderr[-3000:]
    corpus = write_tiny_parallel_corpus(tmp_path / "corpus")
    files = [
        "data=text_files", f"data.train_path={corpus['dir']}/train",
        f"data.valid_path={corpus['dir']}/valid", f"data.test_path={corpus['dir']}/test",
        f"train.init_from={base}", "train.max_train_pairs=0", "train.validate_every=15",
    ]  # fmt: skip
    # An explicit size that conflicts with the checkpoint is refused by name.
    refused = _train(tuned, multi30k_dir, *files, "model.d_model=64", "train.max_updates=30")
    assert refused.returncode != 0 and "model.d_model" in refused.stderr, refused.stderr[-2000:]

    done = _train(tuned, multi30k_dir, *files, "model.dropout=0.2", "train.max_updates=30")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tuned / "spm.model").read_bytes() == (base / "spm.model").read_bytes()
    last = load_checkpoint(tuned / "checkpoints" / "last.pt")
    start = load_checkpoint(base / "checkpoints" / "final.pt")
    assert last["tokenizer"] == start["tokenizer"] and last["step"] == 30
    assert last["config"]["model"] == {**start["config"]["model"], "dropout": 0.2}
    assert last["config"]["model"]["d_model"] == 32
    record = json.loads((tuned / "init_from.json").read_text("utf-8"))
    assert record["checkpoint"] == str((base / "checkpoints" / "final.pt").resolve())
    assert _loss(tuned / "checkpoints" / "last.pt", corpus) < _loss(
        base / "checkpoints" / "final.pt", corpus
    )

    # The run resumes from its own state: the checkpoint it started from may be gone.
    moved = base.rename(tmp_path / "base-moved")
    again = _train(tuned, multi30k_dir, *files, "model.dropout=0.2", "train.max_updates=40")
    assert again.returncode == 0, again.stderr[-3000:]
    log = (tuned / "train.log").read_text("utf-8")
    assert "resuming from" in log and "(update 30)" in log
    assert load_checkpoint(tuned / "checkpoints" / "last.pt")["step"] == 40
    assert (tuned / "spm.model").read_bytes() == (moved / "spm.model").read_bytes()
    # Another starting checkpoint for the same folder is refused, naming the one it started from.
    files[-3] = f"train.init_from={moved}"
    other = _train(tuned, multi30k_dir, *files, "train.max_updates=50")
    assert other.returncode == 2 and f"started from {base}" in other.stderr, other.stderr[-2000:]


@pytest.mark.slow
def test_prepare_with_init_from_encodes_with_the_checkpoints_tokenizer(tmp_path: Path) -> None:
    corpus = write_tiny_parallel_corpus(tmp_path / "corpus")
    model, tokenizer, cfg = tiny_assets(corpus)
    ckpt = write_checkpoint(tmp_path / "start" / "last.pt", model, tokenizer, cfg)
    command = [
        sys.executable, str(ROOT / "scripts" / "prepare_data.py"), "data=text_files",
        f"data.train_path={corpus['dir']}/train", f"data.valid_path={corpus['dir']}/valid",
        f"data.test_path={corpus['dir']}/test", f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}", f"train.init_from={ckpt}",
        "data.max_tokens_per_side=48",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"vocab {tokenizer.src_vocab_size} src" in done.stdout, done.stdout
    assert (tmp_path / "run" / "spm.model").read_bytes() == tokenizer.model_files()["spm.model"]
