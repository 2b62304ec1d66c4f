#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 12) from its seed corpus, in a
# scratch copy so that the repository's seeds stay as they are. Needs the nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz --version 0.13.2 --locked`).
# A crash or a hang fails the run; its input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-12}"
targets=(otlp_protobuf otlp_json wal_replay logs_query query_params zipkin loki_push log_senders)
cargo +nightly fuzz build -O
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "artifacts/$target"
    echo "== fuzz $target for ${seconds}s"
    cargo +nightly fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 2>&1 \
        | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|thread '.*' panicked)" || true
    if [ -n "$(ls -A "artifacts/$target")" ]; then
        echo "fuzz target $target found a crash or a hang: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
