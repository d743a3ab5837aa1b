"""kafka-python 3.x's admin calls on records and log dirs: produce COUNT
messages to partition 0, delete the records below OFFSET, describe the
broker's log dirs.

Usage: kafka_python_admin.py BOOTSTRAP TOPIC COUNT OFFSET
Prints one JSON line: {"deleted": {"error_code": .., "low_watermark": ..},
"log_dirs": [{"broker": id, "log_dirs": [...]}]}.
"""
import json
import sys

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition


def main():
    bootstrap, topic, count, offset = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for i in range(count):
        producer.send(topic, value=b"v-%05d" % i, partition=0)
    producer.flush(timeout=60)
    producer.close(timeout=30)

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    deleted = admin.delete_records({TopicPartition(topic, 0): offset}, timeout_ms=30000)
    answer = deleted[TopicPartition(topic, 0)]
    log_dirs = admin.describe_log_dirs()
    admin.close()
    print(json.dumps({
        "deleted": {"error_code": answer["error_code"], "low_watermark": answer["low_watermark"]},
        "log_dirs": log_dirs,
    }, default=str))


if __name__ == "__main__":
    main()
