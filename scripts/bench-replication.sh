#!/usr/bin/env bash
# `make bench-replication`: what replication costs, on a 3-node cluster on
# this machine (binaries built beforehand by make). Writes
# $OUT/replication.md and, per step, its own files under $OUT/replication/:
#   a. rf1/ and rf3/: the standard 1 KB, 100-partition, 50k msg/s acks=all
#      workload against one cluster (scripts/cluster.sh), on a topic of
#      replication factor 1, then on one of 3 with min.insync.replicas=2.
#   b. catchup.md: a follower stopped while empty, GIB GiB produced, then
#      its catch-up rate and CPU per replicated GiB.
#   c. failover.md: kill -9 of a leader under acks=all, ROUNDS rounds.
#   and baseline.json: the machine's loopback TCP and disk append rates.
# Every step is bounded; every broker started is stopped on exit.
set -euo pipefail

TARGET=${CARGO_TARGET_DIR:-./target}
BENCH=$TARGET/release/sluice-bench
EXAMPLES=$TARGET/release/examples
export SLUICE_BIN=${SLUICE_BIN:-$TARGET/release/sluice}
OUT=${OUT:-bench/results}
WORKLOAD=${WORKLOAD:-bench/workloads/1-topic-100-partitions-1kb-50k.toml}
GIB=${GIB:-2}
ROUNDS=${ROUNDS:-5}
# Ports for step a's cluster, away from `make cluster`'s 9092-9094.
CLIENT_PORT_BASE=${CLIENT_PORT_BASE:-29092}
QUORUM_PORT_BASE=${QUORUM_PORT_BASE:-29192}
# Extra flags for every broker of every step (split on spaces).
SLUICE_ARGS=${SLUICE_ARGS:-}
# How long the cluster may take to start and to stop.
START_SECS=60
STOP_SECS=60

RUNS=$OUT/replication
mkdir -p "$RUNS"
# STEPS picks steps to (re)run; the report also shows earlier steps' files.
STEPS=${STEPS:-a b c baseline}
step() { [[ " $STEPS " == *" $1 "* ]]; }
# A failed step must never leave an earlier run's figures in the report.
step a && rm -f "$RUNS"/rf1/result.json "$RUNS"/rf3/result.json
step b && rm -f "$RUNS"/catchup.md
step c && rm -f "$RUNS"/failover.md
step baseline && rm -f "$RUNS"/baseline.json
rm -f "$OUT"/replication.md
DATA=$(mktemp -d "${TMPDIR:-/tmp}/sluice-repl-bench.XXXXXX")
cluster_pid=""

stop_cluster() {
    [ -n "$cluster_pid" ] || return 0
    local nodes
    nodes=$(pgrep -P "$cluster_pid" -x sluice || true)
    kill -TERM "$cluster_pid" 2>/dev/null || true
    for _ in $(seq $((STOP_SECS * 10))); do
        kill -0 "$cluster_pid" 2>/dev/null || break
        sleep 0.1
    done
    # Whatever outlived the bound.
    for pid in $cluster_pid $nodes; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait "$cluster_pid" 2>/dev/null || true
    cluster_pid=""
}

cleanup() {
    stop_cluster
    rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_cluster() {
    rm -rf "$DATA"/node-*
    DATA_ROOT=$DATA CLIENT_PORT_BASE=$CLIENT_PORT_BASE QUORUM_PORT_BASE=$QUORUM_PORT_BASE \
        SLUICE_ARGS=$SLUICE_ARGS ./scripts/cluster.sh > "$DATA/cluster.out" 2>&1 &
    cluster_pid=$!
    for _ in $(seq $((START_SECS * 10))); do
        if [ "$(grep -c 'sluice listening on' "$DATA/cluster.out")" -ge 3 ]; then
            return 0
        fi
        kill -0 "$cluster_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench-replication: the cluster did not start; see $DATA/node-N.log" >&2
    tail -n 5 "$DATA"/node-*.log >&2 || true
    return 1
}

bootstrap="127.0.0.1:$CLIENT_PORT_BASE,127.0.0.1:$((CLIENT_PORT_BASE + 1)),127.0.0.1:$((CLIENT_PORT_BASE + 2))"
run_a() {
    local rf=$1
    shift
    echo "== a. $WORKLOAD, replication factor $rf" >&2
    "$BENCH" run "$WORKLOAD" --target "cluster=$bootstrap" --replication-factor "$rf" "$@" \
        --no-baseline --out "$RUNS/rf$rf"
}

failed=""
if step a; then
    start_cluster
    run_a 1 || failed="$failed rf1"
    run_a 3 --min-insync-replicas 2 || failed="$failed rf3"
    cp "$DATA"/node-*.log "$RUNS/" 2>/dev/null || true
    stop_cluster
fi

if step b; then
    echo "== b. follower catch-up, $GIB GiB" >&2
    # shellcheck disable=SC2086
    timeout 1800 "$EXAMPLES/replication_catchup" --gib "$GIB" --out "$RUNS/catchup.md" \
        -- $SLUICE_ARGS || failed="$failed catchup"
fi

if step c; then
    echo "== c. failover under acks=all, $ROUNDS rounds" >&2
    # shellcheck disable=SC2086
    timeout 1800 "$EXAMPLES/replication_failover" --rounds "$ROUNDS" --out "$RUNS/failover.md" \
        -- $SLUICE_ARGS || failed="$failed failover"
fi

if step baseline; then
    echo "== machine baselines" >&2
    "$BENCH" baseline --out "$RUNS" --secs 3 || failed="$failed baseline"
fi

WORKLOAD=$WORKLOAD GIB=$GIB ROUNDS=$ROUNDS SLUICE_ARGS=$SLUICE_ARGS \
    ./scripts/replication-report.sh "$RUNS" > "$OUT/replication.md"
echo "wrote $OUT/replication.md" >&2
if [ -n "$failed" ]; then
    echo "bench-replication: failed:$failed" >&2
    exit 1
fi
