#!/usr/bin/env bash
# Starts a 3-node Sluice cluster on this machine: every node runs a
# controller voter and a broker (combined mode). Clients: 127.0.0.1:9092-9094,
# quorum: 127.0.0.1:9192-9194, data under ./data/node-N. Ctrl-C (or SIGTERM
# to this script) stops all three (each hands its leaderships over first).
#
# Optional environment: CLIENT_PORT_BASE and QUORUM_PORT_BASE move the port
# ranges (node N gets BASE + N - 1), SLUICE_ARGS adds flags to every node
# (split on spaces), SLUICE_BIN and DATA_ROOT pick the binary and data root.
set -euo pipefail
BIN=${SLUICE_BIN:-./target/release/sluice}
DATA=${DATA_ROOT:-./data}
CLIENT_BASE=${CLIENT_PORT_BASE:-9092}
QUORUM_BASE=${QUORUM_PORT_BASE:-9192}
read -r -a EXTRA <<< "${SLUICE_ARGS:-}"
VOTERS="1@127.0.0.1:$QUORUM_BASE,2@127.0.0.1:$((QUORUM_BASE + 1)),3@127.0.0.1:$((QUORUM_BASE + 2))"
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
        --listen "127.0.0.1:$((CLIENT_BASE + n - 1))" \
        --controller-listen "127.0.0.1:$((QUORUM_BASE + n - 1))" \
        --controller-quorum-voters "$VOTERS" \
        --data-dir "$DATA/node-$n" \
        ${EXTRA[@]+"${EXTRA[@]}"} \
        > >(sed -u "s/^/[node $n] /") 2> "$DATA/node-$n.log" &
    pids+=($!)
done
echo "bootstrap: 127.0.0.1:$CLIENT_BASE,127.0.0.1:$((CLIENT_BASE + 1)),127.0.0.1:$((CLIENT_BASE + 2)) (logs in $DATA/node-N.log)"
wait
