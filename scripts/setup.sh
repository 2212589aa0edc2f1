#!/usr/bin/env bash
# Set up cnnlab in .venv on a fresh machine. torch is installed first, pinned to the CPU build this machine
# provides: resolved as a bare dependency, pip would fetch the newest CUDA build (several GB) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
# Fashion-MNIST from Debian, so the main job has real data on a machine that cannot download MNIST.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  { $sudo apt-get install -y -q dataset-fashion-mnist || { $sudo apt-get update -q && $sudo apt-get install -y -q dataset-fashion-mnist; }; } >/dev/null 2>&1 \
    || echo "note: could not install Debian's dataset-fashion-mnist (needs root); MNIST will be downloaded instead"
fi
echo "cnnlab is set up in .venv: run .venv/bin/cnnlab --help"
