#!/usr/bin/env bash
# Install flushback into ./.venv and run the main job: the fear + flush backtest on BTC daily.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[dev]"
if [ -z "${FLUSHBACK_DATA_DIR:-}" ] && [ -d ../shared/data/prices ]; then
  export FLUSHBACK_DATA_DIR="$(cd ../shared/data && pwd)"
fi
.venv/bin/flushback --help
