#!/usr/bin/env bash
# Rebuild the shipped names-era checkpoint from a clean clone, with the baseline it is compared
# with and the period-fit report:
#
#     .venv/bin/pip install -e '.[train]' && training/recipes/names-era.sh
#
# One model of 32 / 224 x 4 given a sex and a decade (condition tokens), each sex and decade drawn
# alike and the names within it by births (--weighting share), no dropout, final weights; the
# baseline is the same run without the condition. The two run side by side, one core each.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
ERA=(--corpus resources/names-era.tsv.gz --n-embd 32 --hidden 224,224,224,224 --weighting share
     --dropout 0 --steps 20000 --eval-interval 20000 --threads 1 --no-progress)
mkdir -p runs
$PY -m training train "${ERA[@]}" --name names-era --out models > runs/names-era.log 2>&1 &
model=$!
$PY -m training train "${ERA[@]}" --conditions none --name names-era-uncond --out runs/era \
    > runs/names-era-uncond.log 2>&1 &
baseline=$!
wait "$model"
wait "$baseline"
$PY -m training evaluate models/names-era.pt --baseline runs/era/names-era-uncond.pt --threads 2
