#!/usr/bin/env bash
# cnnlab's main job on a fresh machine: set up, then train the lesson's MLP on MNIST (found or downloaded), or on
# Fashion-MNIST when MNIST cannot be had, and print its test accuracy and where its pictures are.
# Extra arguments go to `cnnlab train` (e.g. --recipe lesson).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# the data's place, if given, is where MNIST is looked for too (--data-root DIR or --data-root=DIR)
root=()
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --data-root) root=(--data-root "${args[$((i + 1))]:-}") ;;
    --data-root=*) root=(--data-root "${args[$i]#--data-root=}") ;;
  esac
done
if .venv/bin/cnnlab datasets mnist --download "${root[@]}" >/dev/null 2>&1; then
  dataset=mnist
else
  dataset=fashion-mnist
  echo "MNIST is not on this machine and could not be downloaded: training on Fashion-MNIST instead."
fi
.venv/bin/cnnlab train mlp --dataset "$dataset" "$@"
