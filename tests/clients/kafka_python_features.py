"""kafka-python 3.x's admin calls on feature levels (KIP-584) and on topic
partitions a page at a time (DescribeTopicPartitions, KIP-966).

Usage: kafka_python_features.py BOOTSTRAP TOPIC
Prints one JSON line: {"features": describe_features(), "updates": {case:
update_features() answer}, "pages": [[[name, [partition, ...]], ...] per
page], "cursors": [next_cursor per page], "elr": [eligible leader replicas
of the first page's partitions]}.
"""
import json
import sys

from kafka import KafkaAdminClient
from kafka.admin import UpdateFeatureType
from kafka.errors import KafkaError


def pages(admin, topic, limit):
    """Every page of TOPIC and a missing topic, LIMIT partitions at a time."""
    out, cursors, elr = [], [], []
    cursor = None
    for _ in range(16):
        page = admin.describe_topic_partitions(
            [topic, topic + "-missing"], response_partition_limit=limit, cursor=cursor)
        out.append([[t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]]]
                    for t in page["topics"]])
        elr.extend(p["eligible_leader_replicas"] for t in page["topics"] for p in t["partitions"])
        cursor = page["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            break
    return out, cursors, elr


def update(admin, features, **kwargs):
    """update_features()'s answer per feature. From UpdateFeatures v2 a
    refusal is the request's error, which the client raises: each feature
    then answers it."""
    try:
        return admin.update_features(features, **kwargs)
    except KafkaError as e:
        return {name: f"{type(e).__name__}: {e}" for name in features}


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    features = admin.describe_features()
    updates = {
        "same": update(admin, {"group.version": 1}),
        "up": update(admin, {"group.version": 2}),
        "down-as-upgrade": update(admin, {"group.version": 0}),
        "down-safe": update(admin, {"group.version": (UpdateFeatureType.SAFE_DOWNGRADE, 0)}),
        "validate-only": update(admin, {"group.version": 1}, validate_only=True),
    }
    listed, cursors, elr = pages(admin, topic, 2)
    admin.close()
    print(json.dumps({
        "features": features,
        "updates": updates,
        "pages": listed,
        "cursors": cursors,
        "elr": elr,
    }, default=str))


if __name__ == "__main__":
    main()
