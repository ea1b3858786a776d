#!/usr/bin/env bash
# The README's results table from one command: train the default recipe English→German and
# German→English, score each run's final model (checkpoints/final.pt, as training does) on every
# Multi30k test set of its direction, and print the table.
#
#   bash scripts/reproduce_results.sh                        # one run after the other
#   PARALLEL=1 bash scripts/reproduce_results.sh train.cpu_threads=1 train.max_time_minutes=125
#   SECOND="model.d_ff=512" PARALLEL=1 bash scripts/reproduce_results.sh train.cpu_threads=1
#
# Arguments are Hydra overrides for all trainings. PARALLEL=1 trains both directions at once
# (on a 2-core CPU, one thread each gets more done than two runs in turn). The runs go to
# $RESULTS_DIR/<direction> (default runs/results); re-running the command resumes them.
# SECOND="OVERRIDES" then trains a second run of each direction with those overrides as well
# (to $RESULTS_DIR/<direction>-second), scores it alone, and scores both runs decoded together
# (`evaluate.py FIRST --ensemble SECOND`), the ensemble rows of docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
out=${RESULTS_DIR:-runs/results}
directions=(en-de de-en)
read -ra second <<< "${SECOND:-}"

train() {  # $1: direction, $2: run folder name, then overrides
  local src=${1%-*} tgt=${1#*-} name=$2
  shift 2
  "$python" scripts/train.py "data=multi30k_${src}_${tgt}" "hydra.run.dir=$out/$name" "$@" \
    > "$out/train-$name.out" 2>&1
}

train_all() {  # $1: suffix of the run folders, then overrides
  local suffix=$1
  shift
  if [ "${PARALLEL:-0}" = 1 ]; then
    local pids=()
    for d in "${directions[@]}"; do train "$d" "$d$suffix" "$@" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid"; done
  else
    for d in "${directions[@]}"; do train "$d" "$d$suffix" "$@"; done
  fi
}

mkdir -p "$out"
train_all "" "$@"
runs=("${directions[@]/#/$out/}")
if [ ${#second[@]} -gt 0 ]; then
  train_all -second "$@" "${second[@]}"
  runs+=("${runs[@]/%/-second}")
fi

for d in "${directions[@]}"; do
  for split in test_2016_flickr test_2017_flickr; do  # final.pt: the model each run reports
    "$python" scripts/evaluate.py "$out/$d/checkpoints/final.pt" --split "$split"
    if [ ${#second[@]} -gt 0 ]; then
      "$python" scripts/evaluate.py "$out/$d-second/checkpoints/final.pt" --split "$split"
      "$python" scripts/evaluate.py "$out/$d/checkpoints/final.pt" \
        --ensemble "$out/$d-second/checkpoints/final.pt" --split "$split"
    fi
  done
done
"$python" scripts/results_table.py "${runs[@]}"
