#!/usr/bin/env bash
# Create/update the virtual environment in .venv and install what noisevision needs.
# Idempotent: a second run only re-installs when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
NEED_GB=7 # the venv takes ~6.1 GB (torch's CUDA build), plus room for pip's work

die() { echo "[setup] error: $*" >&2; exit 1; }

# pip without the noise of the machine's index configuration; its exit status is kept.
pip_install() {
  local rc=0 log
  log=$(mktemp)
  "$VENV/bin/python" -m pip install -q --no-cache-dir "$@" >"$log" 2>&1 || rc=$?
  grep -v '^WARNING: Location' "$log" || true
  rm -f "$log"
  [ "$rc" -eq 0 ] || die "pip install $* failed (exit $rc); see the lines above"
}

# Fashion-MNIST is the evaluation set: Debian's package where apt-get can install it, otherwise
# the same files fetched through torchvision into the cache folder, once the venv is there.
fetch_fashion_mnist=0
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing Debian's dataset-fashion-mnist (offline evaluation data)"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
      || fetch_fashion_mnist=1
  else
    fetch_fashion_mnist=1
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.noisevision-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    free_kb=$(df -Pk "$VENV" | awk 'NR==2 {print $4}')
    [ "$free_kb" -ge $((NEED_GB * 1024 * 1024)) ] \
      || die "only $((free_kb / 1024 / 1024)) GB free for $VENV; torch needs about $NEED_GB GB: free some disk space and run again"
  fi
  echo "[setup] installing torch 2.14.1 + torchvision 0.29.1 and noisevision into $VENV"
  pip_install torch==2.14.1 torchvision==0.29.1
  pip_install -e '.[dev]'
  # Checked from outside the checkout, so that what is imported is what was installed.
  venv_python="$(cd "$VENV" && pwd)/bin/python"
  (cd / && "$venv_python" -c "import noisevision, torch, torchvision, safetensors, pytest") \
    || die "the installed packages do not import; remove $VENV and run again"
  touch "$stamp"
fi

if [ "$fetch_fashion_mnist" -eq 1 ]; then
  echo "[setup] Debian's dataset-fashion-mnist could not be installed: fetching Fashion-MNIST through torchvision instead"
  "$VENV/bin/python" -c "from noisevision.data.eval_datasets import load_fashion_mnist; load_fashion_mnist(download=True)" \
    || die "no Fashion-MNIST: install Debian's dataset-fashion-mnist, or run again with internet access"
fi
