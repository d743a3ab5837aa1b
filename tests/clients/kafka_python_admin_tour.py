"""A tour of every public method of kafka-python 3.x's KafkaAdminClient.

Sets the stage first: creates the topics tour-a (3 partitions), tour-scratch
(2 partitions, retention.ms set) and tour-tx (1 partition); produces 10
messages to each partition of tour-a, a second apart by timestamp; runs the consumer group tour-group to
the end of tour-a, commits and leaves (so the group is Empty); joins the
group tour-static with a static member (group.instance.id tour-static-1)
that closes without leaving; commits one transaction on tour-tx as
tour-txn-committed and leaves one open as tour-txn-open.

Then calls each admin method once, as an operator would, each in its own
try/except; methods that change state also look at the state afterwards
(the "after" part of their result). The whole run is bounded by a watchdog.

Usage: kafka_python_admin_tour.py BOOTSTRAP
Prints one JSON line: {"<method>": {"ok": true, "result": ..} or
{"ok": false, "error": "<ExceptionType: message>"}, ...} with one entry per
admin method (plus "_setup" for the stage itself).
"""
import faulthandler
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition, TopicPartitionReplica
from kafka.admin import (
    ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
    AbortTransactionSpec, ConfigResource, ConfigResourceType, MemberToRemove,
    OffsetSpec, OffsetTimestamp, ResourcePattern, ResourcePatternFilter, ResourceType,
    ScramMechanism, UpdateFeatureType, UserScramCredentialUpsertion,
)
from kafka.protocol.admin import ElectionType
from kafka.protocol.consumer import IsolationLevel
from kafka.structs import OffsetAndMetadata
import kafka.errors as Errors

from kafka_python_tour import Tour, plain, transactions

WATCHDOG_SECS = 300
TIMEOUT_MS = 30000

TOPIC = "tour-a"
SCRATCH = "tour-scratch"
TX_TOPIC = "tour-tx"
GROUP = "tour-group"
STATIC_GROUP = "tour-static"
STATIC_ID = "tour-static-1"
TXN_COMMITTED = "tour-txn-committed"
TXN_OPEN = "tour-txn-open"
USER = "tour-user"
PER_PARTITION = 10

METHODS = """describe_acls create_acls delete_acls describe_cluster describe_log_dirs
alter_replica_log_dirs describe_metadata_quorum api_versions describe_features
update_features describe_configs list_config_resources alter_configs reset_configs
describe_groups list_groups list_group_offsets delete_groups alter_group_offsets
reset_group_offsets delete_group_offsets remove_group_members create_partitions
delete_records elect_leaders alter_partition_reassignments list_partition_reassignments
describe_topic_partitions list_partition_offsets list_topics describe_topics
create_topics wait_for_topics delete_topics list_transactions describe_transactions
describe_producers abort_transaction find_hanging_transactions
alter_user_scram_credentials describe_user_scram_credentials""".split()


# ---------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------

def produce(bootstrap, base_ms):
    """PER_PARTITION messages to each partition of tour-a; message i is
    stamped BASE_MS + i seconds, so offset i is the one found by timestamp."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_block_ms=TIMEOUT_MS)
    for partition in range(3):
        for i in range(PER_PARTITION):
            producer.send(TOPIC, key=b"k-%d" % i, value=b"v-%d-%02d" % (partition, i), partition=partition,
                          timestamp_ms=base_ms + i * 1000)
    producer.flush(timeout=60)
    producer.close(timeout=30)
    return 3 * PER_PARTITION


def consume_and_commit(bootstrap):
    """tour-group reads tour-a to the end, commits and leaves."""
    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=GROUP, client_id="tour-consumer",
        auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1000)
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 3 * PER_PARTITION and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    consumer.commit(timeout_ms=TIMEOUT_MS)
    consumer.close(autocommit=False, timeout_ms=TIMEOUT_MS)
    return seen


def join_static(bootstrap):
    """tour-static gets a static member that closes without a LeaveGroup, so it
    stays in the group until its session times out (or an operator removes it)."""
    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=STATIC_GROUP, group_instance_id=STATIC_ID,
        client_id="tour-static-consumer", auto_offset_reset="earliest", enable_auto_commit=False,
        session_timeout_ms=120000, max_poll_interval_ms=300000)
    seen = 0
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    assigned = sorted(plain(tp) for tp in consumer.assignment())
    consumer.close(autocommit=False, timeout_ms=TIMEOUT_MS)
    return {"assigned": assigned, "seen": seen}


# ---------------------------------------------------------------------------
# The tour
# ---------------------------------------------------------------------------

def topic_configs(admin, topic):
    return admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]


def offsets(admin, tps, spec, isolation_level=IsolationLevel.READ_UNCOMMITTED):
    found = admin.list_partition_offsets({tp: spec for tp in tps}, isolation_level=isolation_level)
    return {plain(tp): found[tp].offset for tp in tps}


def partition_count(admin, topic):
    return [len(t["partitions"]) for t in admin.describe_topics([topic])]


def cluster_calls(t, admin):
    t.call("api_versions", admin.api_versions)
    t.call("describe_cluster", admin.describe_cluster)
    t.call("describe_metadata_quorum", admin.describe_metadata_quorum)
    t.call("describe_features", admin.describe_features)

    def update_features():
        # Re-finalize a feature at its current level, validate only: metadata.version
        # if the broker finalizes it (a KRaft Kafka does), else the first finalized one.
        finalized = {name: f["finalized"][1] for name, f in admin.describe_features().items() if "finalized" in f}
        name = "metadata.version" if "metadata.version" in finalized else sorted(finalized)[0]
        return {"feature": name, "level": finalized[name],
                "answer": admin.update_features(
                    {name: (UpdateFeatureType.UPGRADE, finalized[name])}, validate_only=True)}
    t.call("update_features", update_features)

    t.call("describe_log_dirs", lambda: admin.describe_log_dirs(topic_partitions=[TOPIC]))

    def alter_replica_log_dirs():
        # Move tour-a/0 to the log dir it is already in (a no-op move).
        path = admin.describe_log_dirs(topic_partitions=[TOPIC])[0]["log_dirs"][0]["log_dir"]
        return {"path": path,
                "answer": admin.alter_replica_log_dirs({TopicPartitionReplica(TOPIC, 0, 0): path})}
    t.call("alter_replica_log_dirs", alter_replica_log_dirs)


def topic_calls(t, admin, base_ms):
    t.call("list_topics", lambda: sorted(admin.list_topics()))
    t.call("describe_topics", lambda: admin.describe_topics([TOPIC]))
    t.call("describe_topic_partitions", lambda: admin.describe_topic_partitions([TOPIC, TX_TOPIC]))
    tps = [TopicPartition(TOPIC, p) for p in range(3)]
    t.call("list_partition_offsets", lambda: {
        "earliest": offsets(admin, tps, OffsetSpec.EARLIEST),
        "latest": offsets(admin, tps, OffsetSpec.LATEST),
        # Expected: offset PER_PARTITION - 1, then offset 5.
        "max_timestamp": plain(admin.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP for tp in tps})),
        "at_base_plus_5s": offsets(admin, tps, OffsetTimestamp(base_ms + 5000)),
    })

    def delete_records():
        answer = admin.delete_records({TopicPartition(TOPIC, 0): 3}, timeout_ms=TIMEOUT_MS)
        return {"answer": answer, "earliest_after": offsets(admin, tps[:1], OffsetSpec.EARLIEST)}
    t.call("delete_records", delete_records)

    def create_partitions():
        answer = admin.create_partitions({SCRATCH: 4}, timeout_ms=TIMEOUT_MS)
        return {"answer": answer, "partitions_after": partition_count(admin, SCRATCH)}
    t.call("create_partitions", create_partitions)

    t.call("elect_leaders", lambda: admin.elect_leaders(
        ElectionType.PREFERRED, {TOPIC: [0, 1, 2]}, timeout_ms=TIMEOUT_MS))
    # Reassign tour-a/1 onto the only broker, the one it is on already.
    t.call("alter_partition_reassignments", lambda: admin.alter_partition_reassignments(
        {TopicPartition(TOPIC, 1): [0]}, timeout_ms=TIMEOUT_MS))
    t.call("list_partition_reassignments", lambda: admin.list_partition_reassignments(timeout_ms=TIMEOUT_MS))


def config_calls(t, admin):
    t.call("describe_configs", lambda: admin.describe_configs([
        ConfigResource(ConfigResourceType.TOPIC, SCRATCH),
        ConfigResource(ConfigResourceType.BROKER, "0", [
            "log.retention.hours", "log.retention.ms", "num.partitions", "auto.create.topics.enable",
            "message.max.bytes"]),
    ], include_synonyms=True, config_filter="all"))
    t.call("list_config_resources", lambda: admin.list_config_resources(["TOPIC", "BROKER"]))

    def alter_configs():
        answer = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, SCRATCH,
                                                     {"retention.ms": "3600000", "cleanup.policy": "compact"})])
        after = topic_configs(admin, SCRATCH)
        return {"answer": answer, "after": {k: v["value"] for k, v in after.items()}}
    t.call("alter_configs", alter_configs)

    def reset_configs():
        answer = admin.reset_configs([ConfigResource(ConfigResourceType.TOPIC, SCRATCH, ["cleanup.policy"])])
        after = topic_configs(admin, SCRATCH)
        return {"answer": answer, "after": {k: v["value"] for k, v in after.items()}}
    t.call("reset_configs", reset_configs)


def group_calls(t, admin):
    t.call("list_groups", lambda: {
        "all": admin.list_groups(),
        "empty_or_stable": admin.list_groups(states_filter=["Empty", "Stable"]),
    })
    t.call("describe_groups", lambda: admin.describe_groups([GROUP, STATIC_GROUP]))
    t.call("list_group_offsets", lambda: admin.list_group_offsets({GROUP: None}))

    def committed():
        return {plain(tp): oam.offset for tp, oam in admin.list_group_offsets({GROUP: None})[GROUP].items()}

    def alter_group_offsets():
        answer = admin.alter_group_offsets(
            GROUP, {TopicPartition(TOPIC, 0): OffsetAndMetadata(4, "rewound by tour", None)})
        return {"answer": answer, "after": committed()}
    t.call("alter_group_offsets", alter_group_offsets)

    def reset_group_offsets():
        answer = admin.reset_group_offsets(GROUP, {
            TopicPartition(TOPIC, 0): OffsetSpec.EARLIEST,
            TopicPartition(TOPIC, 1): OffsetSpec.LATEST,
            TopicPartition(TOPIC, 2): 5,
        })
        return {"answer": answer, "after": committed()}
    t.call("reset_group_offsets", reset_group_offsets)

    def delete_group_offsets():
        answer = admin.delete_group_offsets(GROUP, [TopicPartition(TOPIC, 2)])
        return {"answer": answer, "after": committed()}
    t.call("delete_group_offsets", delete_group_offsets)

    def remove_group_members():
        answer = admin.remove_group_members(
            STATIC_GROUP, [MemberToRemove(group_instance_id=STATIC_ID, reason="removed by tour")])
        after = admin.describe_groups([STATIC_GROUP])[STATIC_GROUP]
        return {"answer": answer, "after": {"state": after["group_state"], "members": len(after["members"])}}
    t.call("remove_group_members", remove_group_members)

    def delete_groups():
        answer = admin.delete_groups([GROUP, STATIC_GROUP])
        return {"answer": answer, "groups_after": [g["group_id"] for g in admin.list_groups()]}
    t.call("delete_groups", delete_groups)


def transaction_calls(t, admin):
    t.call("list_transactions", admin.list_transactions)
    t.call("describe_transactions", lambda: admin.describe_transactions([TXN_COMMITTED, TXN_OPEN]))
    tx_tp = TopicPartition(TX_TOPIC, 0)
    t.call("describe_producers", lambda: admin.describe_producers([tx_tp]))
    # A transaction counts as hanging once older than the timeout + 5 min;
    # ask with the default, and with a threshold of zero to see the open one.
    t.call("find_hanging_transactions", lambda: {
        "default": admin.find_hanging_transactions(),
        "threshold_zero": admin.find_hanging_transactions(max_transaction_timeout_ms=-5 * 60 * 1000),
    })

    def abort_transaction():
        described = admin.describe_transactions([TXN_OPEN])[TXN_OPEN]
        spec = AbortTransactionSpec(topic_partition=tx_tp, producer_id=described.producer_id,
                                    producer_epoch=described.producer_epoch)
        lso_before = offsets(admin, [tx_tp], OffsetSpec.LATEST, IsolationLevel.READ_COMMITTED)
        answer = admin.abort_transaction(spec)
        return {
            "spec": spec,
            "answer": answer,
            "last_stable_offset_before": lso_before,
            "last_stable_offset_after": offsets(admin, [tx_tp], OffsetSpec.LATEST, IsolationLevel.READ_COMMITTED),
            "high_watermark_after": offsets(admin, [tx_tp], OffsetSpec.LATEST),
            "producers_after": admin.describe_producers([tx_tp]),
        }
    t.call("abort_transaction", abort_transaction)


def security_calls(t, admin):
    everything = ACLFilter(
        principal=None, host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    def describe_acls():
        # Without an authorizer Kafka answers SECURITY_DISABLED.
        try:
            answer = admin.describe_acls(everything)
        except Errors.SecurityDisabledError as e:
            return {"expected_error": "%s: %s" % (type(e).__name__, e)}
        raise AssertionError("expected SECURITY_DISABLED, got %r" % (answer,))
    t.call("describe_acls", describe_acls)
    t.call("create_acls", lambda: admin.create_acls([ACL(
        principal="User:" + USER, host="*", operation=ACLOperation.READ,
        permission_type=ACLPermissionType.ALLOW, resource_pattern=ResourcePattern(ResourceType.TOPIC, TOPIC))]))
    t.call("delete_acls", lambda: admin.delete_acls([ACLFilter(
        principal="User:" + USER, host=None, operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, TOPIC, ACLResourcePatternType.LITERAL))]))
    t.call("alter_user_scram_credentials", lambda: admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(USER, ScramMechanism.SCRAM_SHA_256, "tour-secret", iterations=8192),
        UserScramCredentialUpsertion(USER, ScramMechanism.SCRAM_SHA_512, "tour-secret"),
    ]))
    t.call("describe_user_scram_credentials", lambda: {
        "one": admin.describe_user_scram_credentials([USER]),
        "all": admin.describe_user_scram_credentials(),
    })


def main():
    bootstrap = sys.argv[1]
    faulthandler.dump_traceback_later(WATCHDOG_SECS, exit=True)
    t = Tour()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tour-admin",
                             request_timeout_ms=TIMEOUT_MS, bootstrap_timeout_ms=TIMEOUT_MS)

    # The stage: topics through create_topics / wait_for_topics, then data.
    t.call("create_topics", lambda: admin.create_topics({
        TOPIC: {"num_partitions": 3, "replication_factor": 1},
        SCRATCH: {"num_partitions": 2, "replication_factor": 1, "configs": {"retention.ms": "86400000"}},
        TX_TOPIC: {"num_partitions": 1, "replication_factor": 1},
    }, timeout_ms=TIMEOUT_MS))
    t.call("wait_for_topics", lambda: admin.wait_for_topics([TOPIC, SCRATCH, TX_TOPIC], timeout_ms=TIMEOUT_MS))
    setup = {}
    open_txn = None
    base_ms = int(time.time() * 1000) - 60000
    try:
        setup["produced"] = produce(bootstrap, base_ms)
        setup["consumed"] = consume_and_commit(bootstrap)
        setup["static"] = join_static(bootstrap)
        open_txn = transactions(bootstrap, TX_TOPIC, TXN_COMMITTED, TXN_OPEN)
        setup["transactions"] = "committed one, left one open"
    except Exception as e:
        setup["error"] = "%s: %s" % (type(e).__name__, e)
    t.results["_setup"] = setup

    cluster_calls(t, admin)
    topic_calls(t, admin, base_ms)
    config_calls(t, admin)
    group_calls(t, admin)
    transaction_calls(t, admin)
    security_calls(t, admin)

    def delete_topics():
        answer = admin.delete_topics([SCRATCH], timeout_ms=TIMEOUT_MS)
        return {"answer": answer, "still_listed": SCRATCH in admin.list_topics()}
    t.call("delete_topics", delete_topics)

    if open_txn is not None:
        open_txn.close(timeout=10)
    admin.close()
    missing = [m for m in METHODS if m not in t.results]
    if missing:
        t.results["_missing"] = missing
    print(json.dumps(t.results, default=str))
    faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main()
