"""kafka-python 3.x (idempotent by default) across a leader's death: produce
half the messages, print READY and wait for a line on stdin (the test kills
the leader meanwhile), produce the rest (the client re-routes to the new
leader), then read everything back.

Usage: kafka_python_failover.py BOOTSTRAP TOPIC COUNT
Prints READY, then one JSON line: {"acked": [values], "failed": n, "consumed": [values]}.
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer


def send_all(producer, topic, values):
    futures = [(v, producer.send(topic, value=v.encode())) for v in values]
    producer.flush(timeout=120)
    acked, failed = [], 0
    for value, future in futures:
        try:
            future.get(timeout=120)
            acked.append(value)
        except Exception as e:  # a failed delivery is reported, not fatal
            print("delivery failed: %r" % e, file=sys.stderr)
            failed += 1
    return acked, failed


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    values = ["v-%05d" % i for i in range(count)]
    acked, failed = send_all(producer, topic, values[: count // 2])
    print("READY", flush=True)
    sys.stdin.readline()
    more, more_failed = send_all(producer, topic, values[count // 2:])
    acked += more
    failed += more_failed
    producer.close(timeout=30)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    consumed = []
    deadline = time.time() + 60
    while len(consumed) < len(acked) and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            consumed.extend(r.value.decode() for r in records)
    consumer.close()
    print(json.dumps({"acked": acked, "failed": failed, "consumed": consumed}), flush=True)


if __name__ == "__main__":
    main()
