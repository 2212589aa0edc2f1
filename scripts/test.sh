#!/usr/bin/env bash
# Set up cnnlab in .venv, then run the test suite (self-contained: the tests make their own tiny data sets).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pytest "$@"
