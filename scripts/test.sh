#!/usr/bin/env bash
# The test command: unit tests (in-memory frames) and lab tests (namespaces, curl, nginx, the
# real director binary, the .deb, a headless browser). Runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
swift build            # the lab tests run the director binary this builds
# The flood tests run the production build: their rates are what it absorbs on two CPUs.
swift build -c release --product director
# The package's tests install and run the .deb this builds.
bash scripts/package.sh >/dev/null
swift test "$@"
# The pair's lab tests again with the XDP fast path on (fast_path: xdp): the split, sync,
# failover, handback and split brain must hold in both modes.
if [ $# -eq 0 ]; then
  DIRECTOR_LAB_FAST_PATH=xdp swift test --skip-build \
    --filter 'DispatcherPairLabTests|FailoverLabTests|DirectRoutingLabTests|SyncFloodLabTests'
fi
