#!/usr/bin/env bash
# The fuzzers, bounded: builds Fuzz/ with libFuzzer and AddressSanitizer (release, in .build-fuzz)
# and runs each fuzzer from its seeds and the checked-in corpus for a number of executions or a
# time limit, whichever comes first. New inputs that reach new code land in a scratch folder;
# --merge adds the ones worth keeping to Fuzz/Corpus.
#
#     bash scripts/fuzz.sh [--forwarder-runs N] [--sync-runs N] [--seconds S] [--merge]
set -euo pipefail
cd "$(dirname "$0")/.."
forwarder_runs=10000000
sync_runs=1000000
seconds=900
merge=false
while [ $# -gt 0 ]; do
    case "$1" in
        --forwarder-runs) forwarder_runs="$2"; shift 2 ;;
        --sync-runs) sync_runs="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --merge) merge=true; shift ;;
        *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

# --sanitize reaches the fuzz package's own targets only; -Xswiftc carries the coverage
# instrumentation and ASan into the director's modules, which are what is being fuzzed.
build=(swift build --package-path Fuzz --scratch-path .build-fuzz -c release --sanitize=fuzzer --sanitize=address
       -Xswiftc -sanitize=fuzzer,address)
"${build[@]}"
binaries=$("${build[@]}" --show-bin-path)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for fuzzer in forwarder sync; do
    runs=$forwarder_runs
    [ "$fuzzer" = sync ] && runs=$sync_runs
    mkdir -p "$scratch/$fuzzer" "$scratch/$fuzzer-artifacts"
    echo "== $fuzzer-fuzzer: $runs executions at most, $seconds s at most"
    # -rss_limit_mb: ASan's shadow plus the corpus stays far below it; a leak or a runaway table does not.
    if ! DIRECTOR_FUZZ_SEEDS="$scratch/$fuzzer" "$binaries/$fuzzer-fuzzer" -runs="$runs" -max_total_time="$seconds" \
            -max_len=4096 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$scratch/$fuzzer-artifacts/" \
            "$scratch/$fuzzer" "Fuzz/Corpus/$fuzzer" 2>"$scratch/$fuzzer.log"; then
        status=1
        tail -60 "$scratch/$fuzzer.log"
        for artifact in "$scratch/$fuzzer-artifacts"/*; do
            [ -e "$artifact" ] || continue
            echo "input that failed ($artifact), base64:"
            base64 -w 0 "$artifact"; echo
        done
    else
        grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|INFO: seed corpus" "$scratch/$fuzzer.log" || true
    fi
    if $merge; then
        "$binaries/$fuzzer-fuzzer" -merge=1 "Fuzz/Corpus/$fuzzer" "$scratch/$fuzzer" 2>/dev/null
    fi
done
exit $status
