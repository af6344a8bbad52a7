#!/usr/bin/env bash
# Train names-world from a clean clone, with the one-country models it is compared with and the
# per-country report (not shipped yet: its runs are measured in docs/models.md):
#
#     .venv/bin/pip install -e '.[train]' && training/recipes/names-world.sh
#
# The shared model: 32 / 224 x 4 given a sex and a country (condition tokens), each sex and country
# drawn alike and the names within it by their counts (--weighting share, as names-era: drawn by
# 1 + ln(count), the first run learnt the long tail many countries share, and its names were mostly
# another country's); no dropout; the best of six validations. The one-country models: the same size
# and weighting, each on one country's names alone (same split), with dropout 0.1, the best weights
# kept. A small country's model learns its names by heart within a few hundred steps (Iceland's 260
# training names are 120 passes at step 250), so the countries with fewer than 20,000 names train
# for 500 to 3,000 steps by size, validated every 25; the others for the shared model's 24,000,
# validated every 1,000. Two lanes, one core each: about 80 minutes for the shared model beside the
# small countries, then about 7 hours for the large ones.
source "$(dirname "$0")/common.sh"
WORLD=(--corpus resources/names-world.tsv.gz --n-embd 32 --hidden 224,224,224,224 --weighting share
       --threads 1 --no-progress)
SMALL=(IS:500 IE:500 NO:1000 SE:1000 RU:1500 IL:1500 DE:3000 BE:3000)  # country:steps
LARGE_A=(DK:24000 US:24000 GB:24000 AU:24000 UY:24000 AT:24000)
LARGE_B=(CA:24000 CH:24000 ES:24000 FR:24000 FI:24000)

shared() {
    $PY -m training train "${WORLD[@]}" --conditions sex,country --dropout 0 --steps 24000 \
        --eval-interval 4000 --name names-world --out runs/world
}
# single EVAL CC:STEPS...: one model per country, one after the other, validated every EVAL steps
single() {
    local eval=$1 spec cc
    shift
    for spec in "$@"; do
        cc=${spec%%:*}
        $PY -m training train "${WORLD[@]}" --countries "$cc" --conditions none --dropout 0.1 \
            --steps "${spec##*:}" --eval-interval "$eval" --name "world-${cc,,}" --out runs/world-single
    done
}
lane() {  # lane shared | small | large-a | large-b
    case $1 in
        shared) shared ;;
        small) single 25 "${SMALL[@]}" ;;
        large-a) single 1000 "${LARGE_A[@]}" ;;
        large-b) single 1000 "${LARGE_B[@]}" ;;
    esac
}
side_by_side lane shared runs/names-world.log lane small runs/world-small.log
side_by_side lane large-a runs/world-large-a.log lane large-b runs/world-large-b.log
$PY -m training world runs/world/names-world.pt --single runs/world-single --threads 2
