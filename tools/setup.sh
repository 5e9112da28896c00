#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system packages, then a venv with the pinned requirements.
# Called by `make` (every target depends on it); idempotent and cheap when already done.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)          # museval -> musdb -> stempeg
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need_apt+=(fluid-soundfont-gm)                 # training SoundFont
[ -f /usr/share/sounds/sf2/sf_GMbank.sf2 ] || need_apt+=(csound-soundfont)                   # training SoundFont
[ -f /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ] || need_apt+=(musescore-general-soundfont-small)  # held-out test SoundFont
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
echo "setup: installing pinned Python requirements into $VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
if "$VENV/bin/pip" show tensorflow >/dev/null 2>&1 && "$VENV/bin/pip" show tensorflow-cpu >/dev/null 2>&1; then
  echo "setup: both tensorflow and tensorflow-cpu are installed in $VENV; remove one (pip uninstall tensorflow)" >&2
  exit 1
fi
