#!/usr/bin/env bash
# How long a single node takes to serve again after kill -9 with many
# partitions: writes a workload for a while, kills the broker, restarts it
# on the same data dir and times it until the broker listens, then
# kills it again (so the data dir stays as a crash leaves it) and repeats
# the restart RESTARTS times. The first restart after the load is the one a
# crash costs; the later ones show the steady cost of an unclean open.
#
#   scripts/bench-unclean-restart.sh [NAME]     # NAME: a label, default "run"
#
# Environment: SLUICE_BIN (default ./target/release/sluice), WORKLOAD
# (default bench/workloads/1-topic-1000-partitions-1kb-50k.toml), RATE msg/s
# (default 2000), DUR seconds of load (default 15), RESTARTS (default 3),
# PORT (default 29300). Data and logs go to /tmp/sluice-unclean-NAME.
set -euo pipefail
name=${1:-run}
bin=${SLUICE_BIN:-./target/release/sluice}
port=${PORT:-29300}
out=/tmp/sluice-unclean-$name
rm -rf "$out"
mkdir -p "$out"
broker=
trap '[ -n "$broker" ] && kill -9 $broker 2>/dev/null; true' EXIT

# Starts the broker and waits (at most 60 s) until it says it listens (once
# every shard does), which a probe of the port could not tell from another
# process on it.
start() {
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$out/data" > "$out/stdout" 2>> "$out/broker.log" &
    broker=$!
    for _ in $(seq 1 6000); do
        grep -q "^sluice listening on" "$out/stdout" 2>/dev/null && return 0
        sleep 0.01
    done
    echo "broker did not listen within 60 s" >&2
    return 1
}

crash() {
    kill -9 "$broker"
    wait "$broker" 2>/dev/null || true
    broker=
}

start
./target/release/sluice-bench run "${WORKLOAD:-bench/workloads/1-topic-1000-partitions-1kb-50k.toml}" \
    --bootstrap "127.0.0.1:$port" --rate "${RATE:-2000}" --duration "${DUR:-15}" \
    --no-baseline --no-plots --out "$out/bench" > "$out/bench.out" 2>&1
crash
sync
for i in $(seq 1 "${RESTARTS:-3}"); do
    t0=$(date +%s.%N)
    start
    t1=$(date +%s.%N)
    echo "$name: unclean restart $i to listening: $(echo "$t1 - $t0" | bc) s"
    sleep 0.2
    crash
done
