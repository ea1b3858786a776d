#!/usr/bin/env bash
# The README's results table from one command: train the default recipe English→German and
# German→English, score each run's final model (checkpoints/final.pt, as training does) on every
# Multi30k test set of its direction, and print the table.
#
#   bash scripts/reproduce_results.sh                        # one run after the other
#   PARALLEL=1 bash scripts/reproduce_results.sh train.cpu_threads=1 train.max_time_minutes=125
#
# Arguments are Hydra overrides for both trainings. PARALLEL=1 trains both directions at once
# (on a 2-core CPU, one thread each gets more done than two runs in turn). The runs go to
# $RESULTS_DIR/<direction> (default runs/results); re-running the command resumes them.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
out=${RESULTS_DIR:-runs/results}
directions=(en-de de-en)

train() {  # $1: direction, then overrides
  local src=${1%-*} tgt=${1#*-}
  shift
  "$python" scripts/train.py "data=multi30k_${src}_${tgt}" "hydra.run.dir=$out/$src-$tgt" "$@" \
    > "$out/train-$src-$tgt.out" 2>&1
}

mkdir -p "$out"
if [ "${PARALLEL:-0}" = 1 ]; then
  pids=()
  for d in "${directions[@]}"; do train "$d" "$@" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid"; done
else
  for d in "${directions[@]}"; do train "$d" "$@"; done
fi

for d in "${directions[@]}"; do
  for split in test_2016_flickr test_2017_flickr; do  # final.pt: the model each run reports
    "$python" scripts/evaluate.py "$out/$d/checkpoints/final.pt" --split "$split"
  done
done
"$python" scripts/results_table.py "${directions[@]/#/$out/}"
