"""`scripts/prepare_data.py` through Hydra on a tiny text-file corpus: exit status, the statistics
table with the right pair counts, and the SentencePiece model in the run folder."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

from tiny import ONE_THREAD, ROOT, tiny_assets, write_checkpoint


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


def test_results_table_reads_reports_and_sums_the_sessions_of_a_resumed_run(
    tmp_path: Path,
) -> None:
    run = tmp_path / "en-de"
    (run / "checkpoints" / "eval").mkdir(parents=True)
    (run / "train.log").write_text(
        "[2026-01-01 09:00:00,001][transformer.cli][INFO] - run folder: x\n"
        "[2026-01-01 09:00:01,001][s][INFO] - hardware: Old CPU, 4 threads\n"
        "[2026-01-01 09:30:00,001][t][INFO] - stopped at update 500: max_updates\n"
        "[2026-01-01 10:00:00,001][transformer.cli][INFO] - run folder: x\n"
        "[2026-01-01 10:00:01,001][s][WARNING] - train.resume=false: starting over; the old...\n"
        "[2026-01-01 10:00:02,001][s][INFO] - hardware: AMD EPYC, 1 thread\n"
        "[2026-01-01 10:30:00,001][transformer.training.trainer][INFO] - update 10 | loss 3.0\n"
        "[2026-01-01 11:00:00,001][t][INFO] - stopped at update 900: signal (1:00:00 in all)\n"
        "[2026-01-01 12:00:00,001][transformer.cli][INFO] - run folder: x\n"
        "[2026-01-01 12:00:05,001][s][INFO] - resuming from x/last.pt (update 900)\n"
        "[2026-01-01 12:00:06,001][s][INFO] - hardware: AMD EPYC, 1 thread\n"
        "[2026-01-01 12:20:30,001][t][INFO] - stopped at update 1200: max_epochs\n"
        "[2026-01-01 12:30:00,001][transformer.cli][INFO] - run folder: x\n"
        "[2026-01-01 12:30:05,001][s][INFO] - resuming from x/last.pt (update 1200)\n"
        "[2026-01-01 12:30:06,001][s][INFO] - hardware: NVIDIA H200\n"
        "[2026-01-01 12:35:00,001][transformer.training.trainer][INFO] - update 1210 | loss 2\n"
        "[2026-01-01 13:00:00,001][transformer.cli][INFO] - run folder: x\n"
        "[2026-01-01 13:00:05,001][s][INFO] - resuming from x/last.pt (update 1200)\n"
        "[2026-01-01 13:00:10,001][t][INFO] - stopped at update 1200: max_updates\n",
        encoding="utf-8",
    )  # a run set aside, then sessions of 1:00:00 + 0:20:30, one killed after 0:05:00 and
    # one of 0:00:10 that wrote final.pt; the set-aside run's hardware does not count
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
    assert row[5] == "1:25:40 (1,200 updates, max_epochs)"
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
    return (
        f"[2026-01-01 09:00:00,001][t][INFO] - validation at update {update}: valid_loss 1.5 | "
        f"valid_ppl {ppl} | valid_bleu {bleu} (best)\n"
    )


def test_validation_curves_put_runs_side_by_side(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for run in (first, second):
        run.mkdir()
    (first / "train.log").write_text(
        _validation(250, 80.0, 5.0)
        + "[2026-01-01 10:00:01,001][s][WARNING] - train.resume=false: starting over; ...\n"
        + _validation(250, 60.0, 6.5)
        + _validation(500, 30.5, 12.0)
        + _validation(500, 29.0, 13.25),  # a resumed session validated 500 again: it wins
        encoding="utf-8",
    )
    (second / "train.log").write_text(
        _validation(250, 70.0, 7.0) + _validation(750, 12.0, 20.0), encoding="utf-8"
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
    assert done.returncode == 2 and f"no train.log in {tmp_path}" in done.stderr


def test_benchmark_prints_both_throughputs_their_ratio_and_decoding_speed(
    multi30k_dir: Path, tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    data = dataclasses.replace(cfg.data, source="multi30k", src_lang="en", tgt_lang="de")
    checkpoint = write_checkpoint(
        tmp_path / "m30k.pt", model, tokenizer, dataclasses.replace(cfg, data=data)
    )
    command = [
        sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--d-model", "32", "--layers", "1",
        "--heads", "2", "--d-ff", "64", "--vocab-size", "400", "--max-tokens", "512",
        "--batches", "2", "--rounds", "2", "--bf16", "--compile", "--checkpoint", str(checkpoint),
        "--run-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    env = {**ONE_THREAD, "MULTI30K_DIR": str(multi30k_dir)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    names = r"ours fp32|ours fp32, torch loss|ours fp32, compiled|nn.Transformer fp32"
    rates = dict(re.findall(rf"^  ({names})\s+([\d,]+)\s+x", out, re.M))
    assert len(rates) == 4 and all(int(r.replace(",", "")) > 0 for r in rates.values()), out
    assert re.search(r"^bf16 matrix product: x\d+\.\d the time of float32", out, re.M), out
    speeds = re.findall(r"^  (greedy|beam 5)\s+([\d.]+) sentences/s", out, re.M)
    assert [name for name, _ in speeds] == ["greedy", "beam 5"], out
    assert "decoding test_2016_flickr (1000 sentences)" in out


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
