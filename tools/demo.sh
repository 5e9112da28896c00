#!/usr/bin/env bash
# `make demo`: render a small piano/violin set, build the mel TFRecords, run the mixture baseline
# and the oracles on the held-out test mixtures, print the BSS Eval v4 table and write a figure.
# Each step is skipped when its output is already complete (delete data/demo to start over).
set -euo pipefail
PY=${1:-.venv/bin/python}; DEMO=${2:-data/demo}; RESULTS=${3:-results}
OUT=$RESULTS/demo
mkdir -p "$OUT"
step() { echo; echo "== $*"; }

step "1/5 render training pieces (FluidR3_GM + TimGM6mb SoundFonts, seed 0)"
[ -f "$DEMO/wav/manifest_train.json" ] || $PY -m pipeline.render --out "$DEMO/wav" --minutes 6 --seed 0 --test-fraction 0 \
    --soundfont FluidR3_GM --soundfont TimGM6mb
step "2/5 render held-out test pieces (MuseScore_General_Lite SoundFont, seed 1: other sounds, other melodies)"
[ -f "$DEMO/wav/manifest_test.json" ] || $PY -m pipeline.render --out "$DEMO/wav" --minutes 4 --seed 1 --test-fraction 1 \
    --soundfont MuseScore_General_Lite
step "3/5 mel-spectrogram TFRecords"
[ -f "$DEMO/mel/mel_params.json" ] || $PY -m pipeline.wav_to_spec --wav "$DEMO/wav" --out "$DEMO/mel"
step "4/5 oracle separations of the test mixtures"
$PY oracle_systems.py --data "$DEMO/wav/test" --out "$OUT/estimates" --mel-params "$DEMO/mel/mel_params.json"
step "5/5 BSS Eval v4 (museval): median over 1 s frames, then over tracks"
$PY bss_eval_v4.py --references "$DEMO/wav/test" --mixture \
    --estimates "$OUT"/estimates/IBM "$OUT"/estimates/IRM "$OUT"/estimates/MWF "$OUT"/estimates/mel_oracle \
    --out "$OUT/separation"
$PY -m pipeline.figures --data "$DEMO/wav/test" --out "$OUT/mels.png" \
    --estimates "IRM=$OUT/estimates/IRM" "mel oracle=$OUT/estimates/mel_oracle"
echo; echo "table: $OUT/separation.md   figure: $OUT/mels.png   wavs: $OUT/estimates/"
