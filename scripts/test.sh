#!/usr/bin/env bash
# Set up cnnlab in .venv, then run the test suite (self-contained: the tests make their own tiny data sets).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The explorer's browser tests drive Debian's headless Chromium; without it they are skipped, and say so.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  { $sudo apt-get install -y -q chromium chromium-driver || { $sudo apt-get update -q && $sudo apt-get install -y -q chromium chromium-driver; }; } >/dev/null 2>&1 \
    || echo "note: could not install chromium and chromium-driver (needs root and apt); the browser tests will be skipped"
fi
.venv/bin/python -m pytest "$@"
