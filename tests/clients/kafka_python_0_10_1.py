"""kafka-python pinned to api_version=(0, 10, 1), as clients of that era
talk: Produce v2 with magic 1 message sets (plain and gzip), a consumer
group fetching with Fetch v3 (down-converted), commits, and what it saw.

Usage: kafka_python_0_10_1.py BOOTSTRAP TOPIC GROUP COUNT
Prints one JSON line: {"sent": [...offsets], "consumed": [[value, timestamp]...], "committed": {...}}.
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

API_VERSION = (0, 10, 1)


def main():
    bootstrap, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    offsets = []
    for half, compression in ((0, None), (1, "gzip")):
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            api_version=API_VERSION,
            enable_idempotence=False,
            acks=1,
            compression_type=compression,
            linger_ms=5,
        )
        futures = [
            producer.send(topic, key=b"k-%d" % (i % 7), value=b"v-%05d" % i,
                          timestamp_ms=1_700_000_000_000 + i)
            for i in range(half * count // 2, (half + 1) * count // 2)
        ]
        producer.flush(timeout=60)
        offsets.extend(f.get(timeout=60).offset for f in futures)
        producer.close(timeout=30)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        api_version=API_VERSION,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    consumed = []
    deadline = time.time() + 60
    while len(consumed) < count and time.time() < deadline:
        for message in consumer.poll(timeout_ms=500).values():
            consumed.extend([m.value.decode(), m.timestamp] for m in message)
    consumer.commit()
    partitions = consumer.partitions_for_topic(topic) or set()
    committed = {p: consumer.committed(TopicPartition(topic, p)) for p in sorted(partitions)}
    consumer.close()
    print(json.dumps({"sent": offsets, "consumed": consumed, "committed": committed}))


if __name__ == "__main__":
    main()
