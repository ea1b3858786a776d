"""The scripts: `scripts/prepare_data.py` through Hydra on a tiny text-file corpus (statistics,
tokenizer, sweeps), the tables read from metrics.jsonl, the benchmark, reproduce_results.sh."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import ONE_THREAD, ROOT, tiny_assets, write_checkpoint

from transformer.benchmarks import training_speed


def prepare_data(corpus: Path, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Run scripts/prepare_data.py (flags such as -m first) on the tiny corpus; assert success."""
    command = [
        sys.executable, str(ROOT / "scripts" / "prepare_data.py"), *overrides, "data=text_files",
        f"data.train_path={corpus}/train", f"data.valid_path={corpus}/valid",
        f"data.test_path={corpus}/test", f"data.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow  # scripts/prepare_data.py as a process
def test_prepare_data_script_prints_statistics_and_saves_the_tokenizer(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    done = prepare_data(
        tiny_parallel_corpus["dir"], tmp_path, "tokenizer.vocab_size=64", f"hydra.run.dir={run_dir}"
    )
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line}
    # split -> pairs, empty, too_long: every generated pair is short and non-empty
    assert rows["train"][:3] == ["400", "0", "0"]
    assert rows["validation"][:3] == ["40", "0", "0"] and rows["test"][:3] == ["40", "0", "0"]
    assert "Corpus: files en->de" in done.stdout and "Train batches at max_tokens=" in done.stdout
    assert (run_dir / "spm.model").is_file() and (run_dir / "tokenizer.json").is_file()
    assert (run_dir / "prepare_data.log").is_file()  # the job keeps its name


@pytest.mark.slow  # scripts/prepare_data.py as processes
def test_multirun_sweep_gives_each_job_its_own_folder(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    """`-m` runs one job per value, each in sweep_dir/N with the overrides it ran with."""
    sweep_dir = tmp_path / "sweep"
    prepare_data(
        tiny_parallel_corpus["dir"], tmp_path, "-m", "tokenizer.vocab_size=48,64",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    for job, size in (("0", "48"), ("1", "64")):
        overrides = (sweep_dir / job / ".hydra" / "overrides.yaml").read_text()
        assert f"tokenizer.vocab_size={size}" in overrides
        assert (sweep_dir / job / "spm.model").is_file()


def _event(event: str, clock: str, update: int, **fields: object) -> str:
    """A metrics.jsonl line (`transformer.run.metrics_log`) at 2026-01-01 `clock`."""
    when = datetime.datetime.fromisoformat(f"2026-01-01T{clock}+00:00").timestamp()
    return json.dumps({"event": event, "time": when, "update": update, **fields}) + "\n"


def _start(clock: str, update: int, hardware: str, setup_seconds: float = 0.0) -> str:
    return _event(
        "start", clock, update, hardware=hardware, world_size=1, precision="fp32",
        config_hash="0123456789abcdef", setup_seconds=setup_seconds,
    )  # fmt: skip


def test_results_table_reads_reports_and_sums_the_sessions_of_a_resumed_run(
    tmp_path: Path,
) -> None:
    run = tmp_path / "en-de"
    (run / "checkpoints" / "eval").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        _start("09:00:00", 0, "Old CPU, 4 threads")
        + _event("stop", "09:30:00", 500, reason="max_updates", wall_seconds=1800.0)
        # started over from update 0 (train.resume=false): the run above no longer counts
        + _start("10:00:02", 0, "AMD EPYC, 1 thread", setup_seconds=2.0)
        + _event("train", "10:30:00", 10, epoch=1, loss=3.0)
        + _event("stop", "11:00:00", 900, reason="signal", wall_seconds=3600.0)
        + _start("12:00:06", 900, "AMD EPYC, 1 thread", setup_seconds=6.0)
        + _event("stop", "12:20:30", 1200, reason="max_epochs", wall_seconds=1230.0)
        + _start("12:30:06", 1200, "NVIDIA H200", setup_seconds=6.0)
        + _event("validation", "12:40:00", 1250, valid_loss=2.0, valid_ppl=7.4, best=True)
        + _event("train", "12:45:00", 1260, epoch=9, loss=2.0)  # lost: killed before a save
        + _start("13:00:05", 1250, "NVIDIA H200", setup_seconds=5.0)
        + _event("stop", "13:00:10", 1250, reason="max_updates", wall_seconds=10.0),
        encoding="utf-8",
    )  # sessions of 1:00:00, 0:20:30, 0:10:00 (killed; its last kept event at 12:40) and
    # 0:00:10, which only wrote final.pt and so keeps the earlier stop reason
    report = {
        "checkpoint": "runs/x/checkpoints/last.pt",
        "averaged": ["a.pt", "b.pt", "c.pt"],
        "data": "multi30k test_2017_flickr",
        "direction": "en-de",
        "decode": {"beam_size": 5},
        "metrics": {"bleu": 33.333, "bleu_lowercase": 34.06, "chrf": 61.25},
    }
    (run / "checkpoints" / "eval" / "t.json").write_text(json.dumps(report), encoding="utf-8")
    final = {**report, "checkpoint": "runs/x/checkpoints/final.pt", "averaged": []}
    final["description"] = "best.pt (update 1000)"
    (run / "checkpoints" / "eval" / "u.json").write_text(json.dumps(final), encoding="utf-8")
    ensemble = {**final, "ensemble": ["runs/y/checkpoints/final.pt"]}
    (run / "checkpoints" / "eval" / "v.json").write_text(json.dumps(ensemble), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "results_table.py"), str(run)],
        env=ONE_THREAD, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    row = done.stdout.splitlines()[2].split(" | ")
    assert row[0] == "| en→de" and row[1] == "multi30k test_2017_flickr"
    assert row[2:5] == ["33.3", "34.1", "61.2"]
    assert row[5] == "1:30:40 (1,250 updates, max_epochs)"
    assert row[6] == "AMD EPYC, 1 thread + NVIDIA H200"
    assert row[7] == "average of 3 checkpoints, beam 5 |"
    row = done.stdout.splitlines()[3].split(" | ")
    assert row[7] == "final.pt: best.pt (update 1000), beam 5 |"
    row = done.stdout.splitlines()[4].split(" | ")
    expected = (
        "ensemble of final.pt: best.pt (update 1000) and runs/y/checkpoints/final.pt, beam 5 |"
    )
    assert row[7] == expected


def _validation(update: int, ppl: float, bleu: float) -> str:
    return _event("validation", "09:00:00", update, valid_loss=1.5, valid_ppl=ppl, valid_bleu=bleu)


def test_validation_curves_put_runs_side_by_side(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for run in (first, second):
        run.mkdir()
    (first / "metrics.jsonl").write_text(
        _start("08:00:00", 0, "cpu")
        + _validation(250, 80.0, 5.0)
        + _start("10:00:00", 0, "cpu")  # started over
        + _validation(250, 60.0, 6.5)
        + _validation(500, 30.5, 12.0)
        + _start("11:00:00", 500, "cpu")
        + _validation(500, 29.0, 13.25),  # a resumed session validated 500 again: it wins
        encoding="utf-8",
    )
    (second / "metrics.jsonl").write_text(
        _start("08:00:00", 0, "cpu") + _validation(250, 70.0, 7.0) + _validation(750, 12.0, 20.0),
        encoding="utf-8",
    )
    script = [sys.executable, str(ROOT / "scripts" / "validation_curves.py"), str(first)]
    done = subprocess.run([*script, str(second)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "| bleu at update | 250 | 500 | 750 |",
        "|---|---|---|---|",
        f"| {first} | 6.5 | 13.25 |  |",
        f"| {second} | 7 |  | 20 |",
    ]
    done = subprocess.run(
        [*script, str(second), "--metric", "ppl", "--every", "500", "--from", "300"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.splitlines()[2:] == [f"| {first} | 29 |", f"| {second} |  |"]
    done = subprocess.run([*script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"no metrics.jsonl in {tmp_path}" in done.stderr


@pytest.mark.slow  # prepares the real Multi30k (tokenizer, encoding)
def test_benchmark_prints_both_throughputs_their_ratio_and_decoding_speed(
    multi30k_dir: Path,
    tiny_parallel_corpus: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """In-process (`run(argv)`), compiled with the eager backend: what is under test is what
    the benchmark prints, not Inductor's code generation (52 s cold on 2 cores)."""
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    data = dataclasses.replace(cfg.data, source="multi30k", src_lang="en", tgt_lang="de")
    checkpoint = write_checkpoint(
        tmp_path / "m30k.pt", model, tokenizer, dataclasses.replace(cfg, data=data)
    )
    monkeypatch.setenv("MULTI30K_DIR", str(multi30k_dir))
    training_speed.run([
        "--d-model", "32", "--layers", "1", "--heads", "2", "--d-ff", "64", "--vocab-size", "400",
        "--max-tokens", "512", "--batches", "2", "--rounds", "2", "--bf16", "--compile",
        "--compile-backend", "eager", "--checkpoint", str(checkpoint), "--decode-sentences", "64",
        "--run-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
    ])  # fmt: skip
    out = capsys.readouterr().out
    names = r"ours fp32|ours fp32, torch loss|ours fp32, compiled|nn.Transformer fp32"
    rates = dict(re.findall(rf"^  ({names})\s+([\d,]+)\s+x", out, re.M))
    assert len(rates) == 4 and all(int(r.replace(",", "")) > 0 for r in rates.values()), out
    ratio = re.search(r"^bf16 matrix product: x(\d+\.\d) the time of float32", out, re.M)
    assert ratio, out
    # A bf16 product does half the memory traffic of a float32 one; even native bf16 (AVX-512
    # BF16) at this tiny shape is not 5 times faster. x0.0 or x0.1 is a timing error.
    assert float(ratio.group(1)) >= 0.2, out
    speeds = re.findall(r"^  (greedy|beam 5)\s+([\d.]+) sentences/s", out, re.M)
    assert [name for name, _ in speeds] == ["greedy", "beam 5"], out
    assert all(float(speed) > 0 for _, speed in speeds), out
    assert "decoding test_2016_flickr (64 sentences)" in out


def test_bf16_matmul_slowdown_is_a_plausible_ratio() -> None:
    """Best-of-rounds timing: float32 and bf16 take the same order of time on any CPU with
    native bf16, and more on one without it; never a tenth of float32's."""
    assert 0.2 <= training_speed.bf16_matmul_slowdown(32) <= 1000


def reproduce_results_calls(tmp_path: Path, **env: str) -> list[str]:
    """Run scripts/reproduce_results.sh with a stand-in for python; the commands it was given."""
    calls = tmp_path / "calls.txt"
    stand_in = tmp_path / "python"
    stand_in.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n', encoding="utf-8")
    stand_in.chmod(0o755)
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "reproduce_results.sh"), "train.cpu_threads=1"],
        env={**ONE_THREAD, "PYTHON": str(stand_in), "RESULTS_DIR": str(tmp_path / "runs"), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return calls.read_text(encoding="utf-8").splitlines()


def test_reproduce_results_trains_and_scores_both_directions(tmp_path: Path) -> None:
    lines = reproduce_results_calls(tmp_path)
    out = tmp_path / "runs"
    assert lines == [
        f"scripts/train.py data=multi30k_en_de hydra.run.dir={out}/en-de train.cpu_threads=1",
        f"scripts/train.py data=multi30k_de_en hydra.run.dir={out}/de-en train.cpu_threads=1",
        *(
            f"scripts/evaluate.py {out}/{d}/checkpoints/final.pt --split {split}"
            for d in ("en-de", "de-en")
            for split in ("test_2016_flickr", "test_2017_flickr")
        ),
        f"scripts/results_table.py {out}/en-de {out}/de-en",
    ]


def test_reproduce_results_trains_scores_and_ensembles_the_second_runs(tmp_path: Path) -> None:
    """SECOND: which runs are trained with which overrides (both directions at once), which
    models are scored alone and together, and what is tabulated."""
    lines = reproduce_results_calls(tmp_path, PARALLEL="1", SECOND="model.d_ff=512 train.seed=2")
    out = tmp_path / "runs"
    trained = sorted(line for line in lines if line.startswith("scripts/train.py"))
    assert trained == sorted(
        f"scripts/train.py data=multi30k_{src}_{tgt} hydra.run.dir={out}/{src}-{tgt}{suffix} "
        f"train.cpu_threads=1{extra}"
        for src, tgt in (("en", "de"), ("de", "en"))
        for suffix, extra in (("", ""), ("-second", " model.d_ff=512 train.seed=2"))
    )
    assert all(line.startswith("scripts/train.py") for line in lines[:4])  # train, then score
    scored = [line for line in lines if line.startswith("scripts/evaluate.py")]
    final = "checkpoints/final.pt"
    for d in ("en-de", "de-en"):
        for split in ("test_2016_flickr", "test_2017_flickr"):
            for model in (f"{out}/{d}/{final}", f"{out}/{d}-second/{final}",
                          f"{out}/{d}/{final} --ensemble {out}/{d}-second/{final}"):  # fmt: skip
                assert f"scripts/evaluate.py {model} --split {split}" in scored
    assert len(scored) == 12
    assert lines[-1] == (
        f"scripts/results_table.py {out}/en-de {out}/de-en {out}/en-de-second {out}/de-en-second"
    )
