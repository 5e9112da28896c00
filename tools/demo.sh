#!/usr/bin/env bash
# `make demo`: render a small piano/violin set, build the mel TFRecords, separate the held-out test
# mixtures (mixture baseline, NMF, BASIS with the shipped priors under pretrained/, oracles), print the
# BSS Eval v4 table and write a figure and the wavs.
# Usage: tools/demo.sh [PYTHON] [DEMO_DIR] [RESULTS_DIR] [PRIOR_FAMILIES] [CHAINS] [FROM_NMF]
#   PRIOR_FAMILIES: shipped prior families to run BASIS with (default "ncsn glow"; add noisy_glow for its row,
#   about 2 s of CPU per second of audio more).
#   CHAINS: BASIS chains per patch, the most probable kept (default: each prior's basis.json; see the README,
#   "Two chains per patch").
#   FROM_NMF: 1 adds the row of BASIS-NCSN started from NMF's estimates (results/warm_start/; needs ncsn among the
#   families; default 0: about 0.65 x the plain BASIS-NCSN time more, which takes the demo over 15 minutes on the
#   slowest 2-core CPU measured, results/levels/README.md, "Session 26").
# Each step is skipped when its output is already complete (delete data/demo to start over); a test split
# rendered with another recipe (an older version of this script) is rendered again.
set -euo pipefail
PY=${1:-.venv/bin/python}; DEMO=${2:-data/demo}; RESULTS=${3:-results}; FAMILIES=${4:-ncsn glow}; CHAINS=${5:-}; FROM_NMF_ROW=${6:-0}
OUT=$RESULTS/demo
step() { echo; echo "== [$(date -u -d @$SECONDS +%M:%S) elapsed] $*"; }

PRIORS=()     # BASIS with each shipped prior family asked for (their tuned schedules: pretrained/*/basis.json)
FROM_NMF=()   # with FROM_NMF_ROW=1, also the row of BASIS-NCSN started from NMF's estimates (results/warm_start/)
if [ "$FROM_NMF_ROW" != 0 ] && [ "$FROM_NMF_ROW" != 1 ]; then
    echo "error: DEMO_FROM_NMF must be 0 or 1, not '$FROM_NMF_ROW'" >&2
    exit 2
fi
for family in $FAMILIES; do
    if [ -d "pretrained/${family}_piano" ] && [ -d "pretrained/${family}_violin" ]; then
        PRIORS+=("--${family//_/-}" "pretrained/${family}_piano" "pretrained/${family}_violin")
        [ "$family" = ncsn ] && [ "$FROM_NMF_ROW" = 1 ] && FROM_NMF=(--from-nmf)
    else
        echo "error: DEMO_PRIORS: no shipped $family priors (pretrained/${family}_piano, pretrained/${family}_violin); choose among: ncsn glow noisy_glow" >&2
        exit 2
    fi
done
if [ "$FROM_NMF_ROW" = 1 ] && [ ${#FROM_NMF[@]} -eq 0 ]; then
    echo "error: DEMO_FROM_NMF=1 starts BASIS-NCSN from NMF: DEMO_PRIORS must include ncsn (it is '$FAMILIES')" >&2
    exit 2
fi

CHAIN_FLAGS=(); CHAIN_NOTE="the priors' basis.json"   # no flag: each prior's basis.json decides
if [ -n "$CHAINS" ]; then
    if ! [[ "$CHAINS" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: DEMO_CHAINS must be a whole number of chains per patch (1, 2, ...), not '$CHAINS'" >&2
        exit 2
    fi
    CHAIN_FLAGS=(--chains "$CHAINS"); CHAIN_NOTE=$CHAINS
fi
mkdir -p "$OUT" "$DEMO"

# The NMF row uses the shipped model, trained on this training split with the defaults of separation/nmf.py
# (pretrained/nmf/MODEL.md; training it again gives the same dictionaries, 2 min of CPU saved).
NMF_MODEL=pretrained/nmf/model.npz
TRAIN_RECIPE=(--minutes 6 --seed 0 --test-fraction 0 --soundfont FluidR3_GM --soundfont TimGM6mb)
# Test set: 76 s of music in 8-12 s pieces (eight pieces; more short pieces make the median over tracks
# steadier than a few long ones for the same CPU time).
TEST_RECIPE=(--minutes 1.25 --piece-seconds 8 12 --seed 1 --test-fraction 1 --soundfont MuseScore_General_Lite)
RECORDED=$(cat "$DEMO/test_recipe.txt" 2>/dev/null || true)      # empty for a split older than this record
if { [ -f "$DEMO/wav/manifest_test.json" ] || [ -f "$DEMO/test_recipe.txt" ]; } && [ "$RECORDED" != "${TEST_RECIPE[*]}" ]; then
    echo "$DEMO: the test split was rendered with another recipe; rendering it again (${TEST_RECIPE[*]})"
    rm -rf "$DEMO/wav/test" "$DEMO/wav/manifest_test.json" "$DEMO/mel" "$OUT"
    mkdir -p "$OUT"
fi

step "1/4 render training pieces (FluidR3_GM + TimGM6mb SoundFonts, seed 0: the data of the shipped NMF model, and mels to train priors on)"
[ -f "$DEMO/wav/manifest_train.json" ] || $PY -m pipeline.render --out "$DEMO/wav" "${TRAIN_RECIPE[@]}"
step "2/4 render held-out test pieces (MuseScore_General_Lite SoundFont, seed 1: another piano, other melodies)"
if [ ! -f "$DEMO/wav/manifest_test.json" ]; then
    $PY -m pipeline.render --out "$DEMO/wav" "${TEST_RECIPE[@]}"
    echo "${TEST_RECIPE[*]}" > "$DEMO/test_recipe.txt"
fi
step "3/4 mel-spectrogram TFRecords"
[ -f "$DEMO/mel/mel_params.json" ] || $PY -m pipeline.wav_to_spec --wav "$DEMO/wav" --out "$DEMO/mel"
step "4/4 separate the test mixtures (mixture, NMF, BASIS with the shipped priors: $FAMILIES, $CHAIN_NOTE chain(s) per patch${FROM_NMF:+, and BASIS-NCSN started from NMF}; oracles), invert, score with BSS Eval v4 (museval)"
$PY bench/separation.py --data "$DEMO/wav/test" --nmf-model "$NMF_MODEL" --out "$OUT" "${PRIORS[@]}" "${CHAIN_FLAGS[@]}" "${FROM_NMF[@]}"
echo; echo "table: $OUT/separation.md   figure: $OUT/separation.png   wavs: $OUT/estimates/"
echo "demo done in $(date -u -d @$SECONDS +%M:%S) (min:s)"
