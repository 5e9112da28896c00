#!/usr/bin/env bash
# `make demo`: render a small piano/violin set, build the mel TFRecords, separate the held-out test
# mixtures (mixture baseline, NMF, BASIS with the shipped priors under pretrained/, oracles), print the
# BSS Eval v4 table and write a figure and the wavs.
# Each step is skipped when its output is already complete (delete data/demo to start over).
set -euo pipefail
PY=${1:-.venv/bin/python}; DEMO=${2:-data/demo}; RESULTS=${3:-results}
OUT=$RESULTS/demo
mkdir -p "$OUT"
step() { echo; echo "== [$(date -u -d @$SECONDS +%M:%S) elapsed] $*"; }

step "1/4 render training pieces (FluidR3_GM + TimGM6mb SoundFonts, seed 0)"
[ -f "$DEMO/wav/manifest_train.json" ] || $PY -m pipeline.render --out "$DEMO/wav" --minutes 6 --seed 0 --test-fraction 0 \
    --soundfont FluidR3_GM --soundfont TimGM6mb
step "2/4 render held-out test pieces (MuseScore_General_Lite SoundFont, seed 1: other sounds, other melodies)"
[ -f "$DEMO/wav/manifest_test.json" ] || $PY -m pipeline.render --out "$DEMO/wav" --minutes 2 --seed 1 --test-fraction 1 \
    --soundfont MuseScore_General_Lite
step "3/4 mel-spectrogram TFRecords"
[ -f "$DEMO/mel/mel_params.json" ] || $PY -m pipeline.wav_to_spec --wav "$DEMO/wav" --out "$DEMO/mel"
step "4/4 separate the test mixtures (mixture, NMF, BASIS with the shipped priors, oracles), invert, score with BSS Eval v4 (museval)"
PRIORS=()     # BASIS with every shipped prior family (their tuned schedules: pretrained/*/basis.json)
for family in ncsn glow noisy_glow; do
    if [ -d "pretrained/${family}_piano" ] && [ -d "pretrained/${family}_violin" ]; then
        PRIORS+=("--${family//_/-}" "pretrained/${family}_piano" "pretrained/${family}_violin")
    fi
done
$PY bench/separation.py --data "$DEMO/wav/test" --nmf-train "$DEMO/wav" --out "$OUT" "${PRIORS[@]}"
echo; echo "table: $OUT/separation.md   figure: $OUT/separation.png   wavs: $OUT/estimates/"
echo "demo done in $(date -u -d @$SECONDS +%M:%S) (min:s)"
