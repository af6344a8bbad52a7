#!/usr/bin/env bash
# Rebuild the shipped names, names-female and names-male checkpoints from a clean clone:
#
#     .venv/bin/pip install -e '.[train]' && training/recipes/2017-models.sh
#
# Each model is an ensemble of two members of 32 / 224 x 4 (325,019 parameters each) that differ by
# --train-seed. Each member is trained in three stages: every year's names (names-all, the three
# 2017 corpora's validation and test names left out), then the names of 2010-2017 of the model's
# sex, then 2017's own names. The two seeds' chains run side by side, one core each (--threads 1):
# about 40 minutes of pretraining, shared by the three models, then about 18 minutes a model.
# Checkpoints of the stages go to runs/; the ensembles to models/ (with models/SHA256SUMS). A model's
# items, what `novel` leaves out, are every name of every year (--known): the held-out names, which
# no stage trained on, are real names too.
source "$(dirname "$0")/common.sh"
ARCH=(--n-embd 32 --hidden 224,224,224,224 --threads 1 --no-progress)
HELD=resources/names.txt,resources/names-female.txt,resources/names-male.txt

chain() {  # chain SEED: one member of each model
    local seed=$1
    $PY -m training train --corpus resources/names-all.txt --name "names-all-$seed" --out runs/pretrain \
        "${ARCH[@]}" --train-seed "$seed" --steps 15000 --exclude-held-out "$HELD"
    for model in names names-female names-male; do
        local recent=resources/${model/names/names-2010s}.txt
        $PY -m training train --corpus "$recent" --name "$model-2010s-$seed" --out runs/2010s \
            --init "runs/pretrain/names-all-$seed.pt" "${ARCH[@]}" --train-seed "$seed" \
            --steps 6000 --lr 1e-3 --min-lr 1e-4 --warmup-steps 100 --exclude-held-out "$HELD"
        $PY -m training train --corpus "resources/$model.txt" --name "$model-$seed" --out runs/2017 \
            --init "runs/2010s/$model-2010s-$seed.pt" "${ARCH[@]}" --train-seed "$seed" \
            --steps 3000 --lr 5e-4 --min-lr 5e-5 --warmup-steps 100
    done
}

side_by_side chain 1 runs/chain-1.log chain 2 runs/chain-2.log
for model in names names-female names-male; do
    $PY -m training ensemble "runs/2017/$model-1.pt" "runs/2017/$model-2.pt" \
        --corpus "resources/$model.txt" --name "$model" --out models --known resources/names-all.txt
done
