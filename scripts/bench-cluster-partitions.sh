#!/usr/bin/env bash
# A 3-node cluster (scripts/cluster.sh, ports 29092-29094 and 29192-29194)
# under 1,000 partitions of replication factor 3: runs sluice-bench against it
# and prints the three brokers' CPU seconds, bytes written and fsync-family
# syscalls (perf stat, when perf is installed) over the run.
#
#   scripts/bench-cluster-partitions.sh [NAME]      # NAME: a label, default "run"
#
# Environment: SLUICE_BIN (default ./target/release/sluice), RATE msg/s
# (default 1000), DUR measured seconds (default 60), SLUICE_ARGS (flags for
# every node, e.g. "--metrics-listen 127.0.0.1:0" to read the brokers'
# stage histograms during the run). Results go to
# /tmp/sluice-cluster-NAME (bench report) and the summary line to stdout.
set -euo pipefail
name=${1:-run}
bin=${SLUICE_BIN:-./target/release/sluice}
out=/tmp/sluice-cluster-$name
rm -rf "$out"
mkdir -p "$out/data"
DATA_ROOT="$out/data" SLUICE_BIN="$bin" CLIENT_PORT_BASE=29092 QUORUM_PORT_BASE=29192 \
    scripts/cluster.sh > "$out/cluster.out" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
    up=0
    for port in 29092 29093 29094; do
        (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && up=$((up + 1))
    done
    [ "$up" = 3 ] && break
    sleep 1
done
sleep 3
pids=$(pgrep -f "serve --node-id .* --data-dir $out/data" | tr '\n' ' ')
cpu_ticks() { local t=0; for p in $pids; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
written() { local t=0; for p in $pids; do t=$((t + $(awk '/^write_bytes/{print $2}' "/proc/$p/io"))); done; echo $t; }
c0=$(cpu_ticks); w0=$(written)
perf_pid=
if command -v perf > /dev/null; then
    perf stat -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_rename \
        -p "$(echo $pids | tr ' ' ',')" -o "$out/perf.txt" &
    perf_pid=$!
fi
./target/release/sluice-bench run bench/workloads/1-topic-1000-partitions-1kb-50k.toml \
    --bootstrap 127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094 --replication-factor 3 \
    --rate "${RATE:-1000}" --duration "${DUR:-60}" --no-baseline --no-plots --out "$out/bench" \
    > "$out/bench.out" 2>&1
c1=$(cpu_ticks); w1=$(written)
if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
syncs=$(awk '/sys_enter_f(data)?sync/{gsub(",", "", $1); s += $1} END {print s + 0}' "$out/perf.txt" 2>/dev/null || echo "?")
echo "$name: brokers' CPU $(( (c1 - c0) / $(getconf CLK_TCK) )) s, written $(( (w1 - w0) / 1000000 )) MB, fsync+fdatasync $syncs (report: $out/bench/report.md)"
