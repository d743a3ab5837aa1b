"""kafka-python 3.x with its defaults (idempotent producer, acks=all): produce,
consume through a consumer group with commits, and print what was seen.

Usage: kafka_python_idempotent.py BOOTSTRAP TOPIC GROUP COUNT
Prints one JSON line: {"producer_id": ..., "sent": [...offsets], "consumed": [...values], "committed": {...}}.
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def main():
    bootstrap, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    assert producer.config["enable_idempotence"], "kafka-python 3.x defaults to idempotence"
    futures = [
        producer.send(topic, key=b"k-%d" % (i % 7), value=b"v-%05d" % i) for i in range(count)
    ]
    producer.flush(timeout=60)
    offsets = [f.get(timeout=60).offset for f in futures]
    producer_id = producer._transaction_manager.producer_id_and_epoch.producer_id
    producer.close(timeout=30)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    consumed = []
    deadline = time.time() + 60
    while len(consumed) < count and time.time() < deadline:
        for message in consumer.poll(timeout_ms=500).values():
            consumed.extend(m.value.decode() for m in message)
    consumer.commit()
    partitions = consumer.partitions_for_topic(topic) or set()
    committed = {p: consumer.committed(TopicPartition(topic, p)) for p in sorted(partitions)}
    consumer.close()
    print(json.dumps({
        "producer_id": producer_id,
        "sent": offsets,
        "consumed": consumed,
        "committed": committed,
    }))


if __name__ == "__main__":
    main()
