#!/usr/bin/env bash
# Rebuild the shipped names, names-female and names-male checkpoints from a clean clone:
#
#     .venv/bin/pip install -e '.[train]' && training/recipes/2024-models.sh
#
# Each model is an ensemble of two members of 32 / 224 x 4 (325,019 parameters each) that differ by
# --train-seed. Each member is trained in three stages, each on the names of the model's sex (both
# sexes for `names`): every year's (names-all*, 1880-2024), then the newest ten years'
# (names-recent*, 2015-2024), then 2024's own. No stage sees a validation or test name of any of
# the three 2024 corpora (--exclude-held-out): the last keeps its own corpus's split and leaves the
# other two's held-out names out of its training part. A sex model's first stage holds its own
# sex's names only: pretrained on both sexes, the 2017 boys' model gave girls' names more often
# than a Markov chain of boys' names. The first stages run for about 24 passes over their training
# names (15,000 steps of names-all, 6,000 of each sex's), the later two as in the 2017 recipe. The
# two seeds' chains run side by side, one core each (--threads 1): about 115 minutes. Checkpoints of
# the stages go to runs/; the ensembles to models/. A model's items, what `novel` leaves out, are
# every name of every year (--known): its held-out names, which it never trained on, are real
# names too.
source "$(dirname "$0")/common.sh"
ARCH=(--n-embd 32 --hidden 224,224,224,224 --threads 1 --no-progress)
HELD=resources/names.txt,resources/names-female.txt,resources/names-male.txt

chain() {  # chain SEED: one member of each model
    local seed=$1 model all steps
    for model in names-male names-female names; do
        all=${model/names/names-all}
        steps=$([ "$model" = names ] && echo 15000 || echo 6000)
        $PY -m training train --corpus "resources/$all.txt" --name "$all-$seed" --out runs/pretrain \
            "${ARCH[@]}" --train-seed "$seed" --steps "$steps" --exclude-held-out "$HELD"
        $PY -m training train --corpus "resources/${model/names/names-recent}.txt" \
            --name "$model-recent-$seed" --out runs/recent --init "runs/pretrain/$all-$seed.pt" \
            "${ARCH[@]}" --train-seed "$seed" \
            --steps 6000 --lr 1e-3 --min-lr 1e-4 --warmup-steps 100 --exclude-held-out "$HELD"
        $PY -m training train --corpus "resources/$model.txt" --name "$model-$seed" --out runs/2024 \
            --init "runs/recent/$model-recent-$seed.pt" "${ARCH[@]}" --train-seed "$seed" \
            --steps 3000 --lr 5e-4 --min-lr 5e-5 --warmup-steps 100 --exclude-held-out "$HELD"
    done
}

side_by_side chain 1 runs/chain-1.log chain 2 runs/chain-2.log
for model in names names-female names-male; do
    $PY -m training ensemble "runs/2024/$model-1.pt" "runs/2024/$model-2.pt" \
        --corpus "resources/$model.txt" --name "$model" --out models --known resources/names-all.txt
done
