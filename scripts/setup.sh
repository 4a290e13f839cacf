#!/usr/bin/env bash
# Set up everything latent4d needs on a fresh Debian/Ubuntu machine:
#  1. the Debian packages Open3D needs (installed when missing and running as root; otherwise printed);
#  2. a virtual environment in .venv;
#  3. torch 2.13.0 (CPU wheel) first, then `pip install -e .[dev]` (see ../shared/ENVIRONMENT.md).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
DEB_PKGS="libusb-1.0-0 libgl1 libegl1 libgomp1 libvulkan1 mesa-vulkan-drivers xvfb xauth imagemagick"

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for p in $DEB_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian packages Open3D and the viewer tests need:$missing"
    (apt-get install -y --no-install-recommends $missing >/dev/null 2>&1) || \
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null)
  else
    echo "[setup] missing Debian packages (Open3D needs them); run:"
    echo "    sudo apt-get install -y$missing"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.latent4d-installed"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ setup.py -nt "$STAMP" ]; then
  pipq() { "$VENV/bin/python" -m pip install -q "$@" 2>&1 | grep -v -e "is ignored: it is neither" -e "^\s*$" || true; }
  pipq --upgrade pip
  if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==2.13.0 (CPU wheel) first"
    pipq "torch==2.13.0"
  fi
  echo "[setup] installing latent4d (pip install -e .[dev])"
  pipq -e ".[dev]"
  "$VENV/bin/python" -c "import latent4d.cli, open3d, torch" || { echo "[setup] installation failed"; exit 1; }
  touch "$STAMP"
fi
echo "[setup] ready: $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
