"""Bytes a consumer protocol group (KIP-848) writes to __consumer_offsets
while N members join one after the other (50 ms apart) and settle, then
leave: what a rebalance costs the coordinator's log. Between, one member
leaves the settled group and the others reconcile: the bytes and the
broker CPU (over what the steady group costs) that takes.

    target/py/bin/python bench/group_writes.py BROKER_BIN MEMBERS PARTITIONS PORT

Starts BROKER_BIN (one shard, one offsets partition, heartbeats every
500 ms) on 127.0.0.1:PORT with a temporary data dir, and uses
confluent-kafka from the venv `make test` builds (target/py).
"""
import glob, os, shutil, subprocess, sys, tempfile, threading, time
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

BIN, N, PARTS, PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = tempfile.mkdtemp(prefix="sluice-group-writes-")
bs = f"127.0.0.1:{PORT}"
broker = subprocess.Popen([BIN, "serve", "--listen", bs, "--data-dir", data, "--shards", "1",
    "--offsets-topic-num-partitions", "1", "--group-consumer-heartbeat-interval-ms", "500"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)
admin = AdminClient({"bootstrap.servers": bs})
admin.create_topics([NewTopic("t", PARTS, 1)])["t"].result()

def broker_cpu_s():
    """The broker's user and system CPU seconds so far."""
    with open(f"/proc/{broker.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def offsets_bytes():
    return sum(os.path.getsize(f) for f in glob.glob(f"{data}/**/__consumer_offsets-0/*.log", recursive=True))

stop, first_stop = threading.Event(), threading.Event()
consumers, owned = [], {}
def run(i):
    c = Consumer({"bootstrap.servers": bs, "group.id": "g", "group.protocol": "consumer"})
    consumers.append(c)
    c.subscribe(["t"])
    mine = first_stop if i == 0 else stop
    while not mine.is_set() and not stop.is_set():
        c.poll(0.2)
        owned[i] = len(c.assignment())
    c.close()
    owned.pop(i, None)

def wait_steady(members):
    """Until `members` own every partition between them, six checks running."""
    deadline, steady = time.time() + 300, 0
    while time.time() < deadline and steady < 6:
        ok = len(owned) == members and sum(owned.values()) == PARTS and all(v > 0 for v in owned.values())
        steady = steady + 1 if ok else 0
        time.sleep(0.5)
threads = []
start = time.time()
for i in range(N):
    t = threading.Thread(target=run, args=(i,)); t.start(); threads.append(t)
    time.sleep(0.05)
wait_steady(N)
settled = time.time() - start
time.sleep(3)
joined = offsets_bytes()
cpu_joined = broker_cpu_s()
owned_settled = sum(owned.values())
# One member leaves a settled group: the others reconcile. The broker's
# CPU over it, less what the steady group costs in as long.
time.sleep(5)
idle_rate = (broker_cpu_s() - cpu_joined) / 5
churn_start, churn_bytes, churn_cpu = time.time(), offsets_bytes(), broker_cpu_s()
first_stop.set()
wait_steady(N - 1)
churn_s = time.time() - churn_start
churn_cpu = broker_cpu_s() - churn_cpu - idle_rate * churn_s
churn_bytes = offsets_bytes() - churn_bytes
stop.set()
for t in threads: t.join()
time.sleep(2)
left = offsets_bytes()
cpu_left = broker_cpu_s()
broker.terminate(); broker.wait()
shutil.rmtree(data)
print(f"{os.path.basename(BIN)} members={N} partitions={PARTS} settled_in={settled:.1f}s "
      f"owned={owned_settled} bytes_after_join={joined} bytes_after_leave={left} "
      f"broker_cpu_s_after_join={cpu_joined:.2f} broker_cpu_s_after_leave={cpu_left:.2f} "
      f"one_leaves: in={churn_s:.1f}s bytes={churn_bytes} broker_cpu_s_over_idle={churn_cpu:.2f}")
