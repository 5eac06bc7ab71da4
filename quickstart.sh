#!/usr/bin/env bash
# Install flushback into ./.venv and run the main job: the fear + flush backtest on BTC daily.
# Data: ../shared/data when it is there (or FLUSHBACK_DATA_DIR), else the public sources.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[dev]"
if [ -z "${FLUSHBACK_DATA_DIR:-}" ] && [ -d ../shared/data/prices ]; then
  export FLUSHBACK_DATA_DIR="$(cd ../shared/data && pwd)"
fi
exec .venv/bin/flushback backtest fear_flush_btc_daily "$@"
