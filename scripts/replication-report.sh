#!/usr/bin/env bash
# Prints bench/results/replication.md (Markdown) from the files
# scripts/bench-replication.sh left in RUNS (its first argument): rf1/ and
# rf3/result.json, catchup.md, failover.md, baseline.json. A missing part
# is named as missing, never filled from elsewhere. Needs jq.
set -euo pipefail
RUNS=${1:?usage: replication-report.sh RUNS_DIR}
WORKLOAD=${WORKLOAD:-bench/workloads/1-topic-100-partitions-1kb-50k.toml}

# One target's figures from a result.json, as a tab-separated line:
# msg/s MB/s sustained e2e p50 p99 p99.9 max (ms) publish p99 (ms) CPU s lost failed
figures() {
    jq -r '.targets[.order[0]] | [
        (.publish_rate_msgs | floor), (.publish_rate_mb * 10 | round / 10),
        (.rate_sustained // "-"),
        (.e2e_latency_us | .p50, .p99, .p999, .max | . / 1000),
        (.publish_latency_us.p99 / 1000),
        (if .broker then (.broker.cpu_seconds * 10 | round / 10) else "-" end),
        (.messages_sent - .messages_received), .messages_failed
    ] | @tsv' "$1"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

cat <<EOF
# Replication benchmarks

Produced by \`make bench-replication\` ($(date -u +%Y-%m-%dT%H:%MZ), commit
$(git rev-parse --short HEAD 2>/dev/null || echo unknown)). **All three brokers and every
client run on this one machine**: $(nproc) cores ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)),
$(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, Linux $(uname -r); a shared, noisy VM. Every
replica's writes, every follower fetch and the load generator compete for
the same cores and disk, so the figures are a lower bound for what separate
machines would do, and runs scatter; repeat before reading a few percent.
MB = 2^20 bytes. Broker flags beyond the defaults: \`${SLUICE_ARGS:-none}\`.

## a. Throughput and latency, RF3 (min.insync.replicas=2) vs RF1

\`$WORKLOAD\` (1 KB messages, 100 partitions, 50k msg/s fixed, acks=all)
against one 3-node cluster (\`scripts/cluster.sh\`, default broker flags),
first on a topic of replication factor 1 (the baseline), then on one of 3:

    sluice-bench run $WORKLOAD --target cluster=BOOTSTRAP --replication-factor 1 --no-baseline --out $RUNS/rf1
    sluice-bench run $WORKLOAD --target cluster=BOOTSTRAP --replication-factor 3 --min-insync-replicas 2 --no-baseline --out $RUNS/rf3

Latency from each message's intended send time (no coordinated omission);
broker CPU is summed over the three brokers over the measured window.

EOF
if [ -f "$RUNS/rf1/result.json" ] && [ -f "$RUNS/rf3/result.json" ]; then
    IFS=$'\t' read -r m1 mb1 s1 p50_1 p99_1 p999_1 max1 pub1 cpu1 lost1 fail1 < <(figures "$RUNS/rf1/result.json")
    IFS=$'\t' read -r m3 mb3 s3 p50_3 p99_3 p999_3 max3 pub3 cpu3 lost3 fail3 < <(figures "$RUNS/rf3/result.json")
    cat <<EOF
| | RF1 (baseline) | RF3, min.insync=2 | RF3/RF1 |
| --- | --- | --- | --- |
| throughput msg/s | $m1 | $m3 | $(ratio "$m3" "$m1") |
| throughput MB/s | $mb1 | $mb3 | $(ratio "$mb3" "$mb1") |
| 50k msg/s sustained | $s1 | $s3 | |
| e2e p50 ms | $p50_1 | $p50_3 | $(ratio "$p50_3" "$p50_1") |
| e2e p99 ms | $p99_1 | $p99_3 | $(ratio "$p99_3" "$p99_1") |
| e2e p99.9 ms | $p999_1 | $p999_3 | $(ratio "$p999_3" "$p999_1") |
| e2e max ms | $max1 | $max3 | $(ratio "$max3" "$max1") |
| publish (ack) p99 ms | $pub1 | $pub3 | $(ratio "$pub3" "$pub1") |
| brokers' CPU s (3 nodes, measured window) | $cpu1 | $cpu3 | $(ratio "$cpu3" "$cpu1") |
| lost / failed messages | $lost1 / $fail1 | $lost3 / $fail3 | |


Acknowledged msg/s, second by second (warm-up included), which shows
whether a tail comes from one stall or from the whole run:

- RF1: $(jq -r '[.targets[.order[0]].throughput[].publish_msgs | floor] | join(" ")' "$RUNS/rf1/result.json")
- RF3: $(jq -r '[.targets[.order[0]].throughput[].publish_msgs | floor] | join(" ")' "$RUNS/rf3/result.json")

Full reports and plots: \`$RUNS/rf1/report.md\`, \`$RUNS/rf3/report.md\`.
EOF
else
    echo "Missing: a run failed (see make's output); no figures."
fi

cat <<EOF

## b. Follower catch-up from a cold start

    replication_catchup --gib ${GIB:-2} --out $RUNS/catchup.md

A fresh 3-node cluster; a topic of RF3 (min.insync.replicas=2) whose
partitions are led by nodes 1 and 2; node 3 stops (controlled shutdown)
while its replicas are empty, ${GIB:-2} GiB of 1 KiB incompressible messages are
produced (acks=all), node 3 restarts and fetches everything. Caught up =
node 3's log files hold as many bytes as the leaders' for every partition.
CPU = utime+stime from /proc/PID/stat over restart -> caught up.

EOF
cat "$RUNS/catchup.md" 2>/dev/null || echo "Missing: the catch-up probe failed (see make's output)."

cat <<EOF

## c. Failover under acks=all

    replication_failover --rounds ${ROUNDS:-5} --out $RUNS/failover.md

A fresh 3-node cluster (default broker flags: broker session timeout 9 s,
heartbeat 2 s); a producer with acks=all writes continuously to an RF3,
min.insync.replicas=2 topic; each round kill -9s partition 0's leader.
Measured from the kill to the first acknowledged write of a message
produced after it, on the killed broker's partitions.

EOF
cat "$RUNS/failover.md" 2>/dev/null || echo "Missing: the failover probe failed (see make's output)."

cat <<EOF

## Machine reference

    sluice-bench baseline --out $RUNS --secs 3

EOF
if [ -f "$RUNS/baseline.json" ]; then
    jq -r '"| loopback TCP | \(.loopback_tcp_mb | round) MB/s |\n| sequential append, page cache (whole run / second half) | \(.disk_append_page_cache_mb | round) / \(.disk_append_page_cache_tail_mb | round) MB/s |\n| sequential append + fdatasync | \(.disk_append_fdatasync_mb | round) MB/s |"' \
        "$RUNS/baseline.json" | sed '1i | baseline | rate |\n| --- | --- |'
else
    echo "Missing: the baseline failed."
fi
