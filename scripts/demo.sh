#!/usr/bin/env bash
# The demo: installs what is missing, builds the director (release), builds the namespace lab
# with the dispatcher pair, sends real HTTP requests and downloads from curl through it to three
# nginx real servers, kills one dispatcher mid-transfer and restarts it, prints what happened,
# and tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
swift build -c release --product director
swift build -c release --product director-lab
DIRECTOR_BINARY="$PWD/.build/release/director" .build/release/director-lab demo "$@"
