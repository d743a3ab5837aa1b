#!/usr/bin/env bash
# Starts a 3-node Sluice cluster on this machine: every node runs a
# controller voter and a broker (combined mode). Clients: 127.0.0.1:9092-9094,
# quorum: 127.0.0.1:9192-9194, data under ./data/node-N. Ctrl-C stops all
# three (each hands its leaderships over first).
set -euo pipefail
BIN=${SLUICE_BIN:-./target/release/sluice}
DATA=${DATA_ROOT:-./data}
VOTERS="1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"
pids=()
stop() {
    trap - INT TERM
    echo "stopping the cluster..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    exit 0
}
trap stop INT TERM
for n in 1 2 3; do
    mkdir -p "$DATA/node-$n"
    "$BIN" serve --node-id "$n" \
        --listen "127.0.0.1:909$((n + 1))" \
        --controller-listen "127.0.0.1:919$((n + 1))" \
        --controller-quorum-voters "$VOTERS" \
        --data-dir "$DATA/node-$n" \
        > >(sed -u "s/^/[node $n] /") 2> "$DATA/node-$n.log" &
    pids+=($!)
done
echo "bootstrap: 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 (logs in $DATA/node-N.log)"
wait
