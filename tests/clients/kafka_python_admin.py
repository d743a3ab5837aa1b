"""kafka-python 3.x's admin calls on records, log dirs and replicas:
produce COUNT messages to partition 0, delete the records below OFFSET,
describe the broker's log dirs, reassign partition 1 to the broker it is on
and list the reassignments under way.

Usage: kafka_python_admin.py BOOTSTRAP TOPIC COUNT OFFSET
Prints one JSON line: {"deleted": {"error_code": .., "low_watermark": ..},
"log_dirs": [{"broker": id, "log_dirs": [...]}], "reassigned": error or
null, "reassigning": [...]}.
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
    broker = admin.describe_cluster()["brokers"][0]["broker_id"]
    reassigned = admin.alter_partition_reassignments({TopicPartition(topic, 1): [broker]})
    reassigning = admin.list_partition_reassignments()
    admin.close()
    print(json.dumps({
        "deleted": {"error_code": answer["error_code"], "low_watermark": answer["low_watermark"]},
        "log_dirs": log_dirs,
        "reassigned": reassigned[TopicPartition(topic, 1)],
        "reassigning": list(reassigning.items()),
    }, default=str))


if __name__ == "__main__":
    main()
