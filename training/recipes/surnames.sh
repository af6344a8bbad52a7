#!/usr/bin/env bash
# Rebuild the shipped surnames checkpoint from a clean clone:
#
#     .venv/bin/pip install -e '.[train]' && training/recipes/surnames.sh
#
# An ensemble of two members of 32 / 224 x 4 (325,019 parameters each) trained on the 1990 census
# surnames, differing by --train-seed; the two run side by side, one core each (--threads 1).
source "$(dirname "$0")/common.sh"
member() {
    $PY -m training train --corpus resources/surnames.txt --name "surnames-$1" --out runs/surnames \
        --n-embd 32 --hidden 224,224,224,224 --threads 1 --no-progress --train-seed "$1" --steps 15000
}
side_by_side member 1 runs/surnames-1.log member 2 runs/surnames-2.log
$PY -m training ensemble runs/surnames/surnames-1.pt runs/surnames/surnames-2.pt \
    --corpus resources/surnames.txt --name surnames --out models
