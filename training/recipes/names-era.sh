#!/usr/bin/env bash
# Rebuild the shipped names-era checkpoint from a clean clone, with the baseline it is compared
# with and the period-fit report:
#
#     .venv/bin/pip install -e '.[train]' && training/recipes/names-era.sh
#
# One model of 32 / 224 x 4 given a sex and a decade (condition tokens), each sex and decade drawn
# alike and the names within it by births (--weighting share), no dropout, final weights; the
# baseline is the same run without the condition. The two run side by side, one core each, about
# 35 minutes.
source "$(dirname "$0")/common.sh"
ERA=(--corpus resources/names-era.tsv.gz --n-embd 32 --hidden 224,224,224,224 --weighting share
     --dropout 0 --steps 20000 --eval-interval 20000 --threads 1 --no-progress)
era() {  # era all: the model; era none: the baseline, without the condition
    if [ "$1" = all ]; then
        $PY -m training train "${ERA[@]}" --name names-era --out models
    else
        $PY -m training train "${ERA[@]}" --conditions none --name names-era-uncond --out runs/era
    fi
}
side_by_side era all runs/names-era.log era none runs/names-era-uncond.log
$PY -m training evaluate models/names-era.pt --baseline runs/era/names-era-uncond.pt --threads 2
