#!/usr/bin/env bash
# The demo: installs what is missing, builds the director (release), builds the namespace lab,
# sends real HTTP requests from curl through the director to three nginx real servers, prints
# what happened, and tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
swift build -c release --product director
swift build -c release --product director-lab
DIRECTOR_BINARY="$PWD/.build/release/director" .build/release/director-lab demo "$@"
