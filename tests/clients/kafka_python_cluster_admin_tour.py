"""A tour of kafka-python 3.x's KafkaAdminClient against a 3-node cluster:
what only a cluster has (several brokers, a metadata quorum, replicas, ISRs,
leaders that move, coordinators on other brokers, per-broker configs).

Sets the stage first: creates the topics
  cl-rf3      3 partitions, replication factor 3
  cl-assigned 3 partitions, explicit replicas [3,1,2] [2,3,1] [1,2,3]
  cl-move     1 partition, explicit replicas [1,2] (moved to [2,3] later)
  cl-elect    1 partition, explicit replicas [1,2,3] (reordered to [2,1,3])
  cl-tx       1 partition, replication factor 3 (transactions)
  cl-doomed   2 partitions, replication factor 3 (deleted at the end)
(plus a few create_topics that a cluster must refuse); produces (acks=all)
10 messages to each partition of cl-rf3, 20 to cl-move, 5 to cl-elect, 2 to
each partition of cl-doomed. While __consumer_offsets and
__transaction_state do not exist yet, asks each broker FindCoordinator, then
sends node 1 a JoinGroup, OffsetCommits and InitProducerIds for keys it may
not coordinate once they exist ("internal_topics/early_*": which broker
accepts, which keeps or lists what afterwards), then runs a first consumer
group and a first transactional producer as clients do. Then picks two
consumer groups coordinated by
brokers other than node 1 (the first bootstrap) and two transactional ids
likewise (FindCoordinator); the first group reads cl-rf3 to the end, commits
and leaves (Empty), the second stays joined (Stable) until the group calls;
commits one transaction on cl-tx and leaves one open.

Then calls the admin methods, each in its own try/except, under keys
"<method>/<case>"; a call that changes state looks at the state afterwards
("after"), polling each broker for it with a deadline (a cluster applies
changes asynchronously). Where kafka-python cannot address a broker itself
(a ListOffsets to a follower, a DescribeConfigs of the cluster default "",
Metadata from one given broker) the case sends the protocol request with
the admin client's own connections ("raw" in the key). The whole run is
bounded by a watchdog.

Usage: kafka_python_cluster_admin_tour.py BOOTSTRAP
(BOOTSTRAP: the three brokers, e.g.
127.0.0.1:39492,127.0.0.1:39493,127.0.0.1:39494; node ids 1, 2, 3).
Prints one JSON line: {"<method>/<case>": {"ok": true, "result": ..} or
{"ok": false, "error": "<ExceptionType: message>"}, ...} plus "_setup" for
the stage. On stderr: one UTC timestamp per case as it starts, to find its
requests in the node logs.
"""
import faulthandler
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    AbortTransactionSpec, AlterConfigOp, ConfigResource, ConfigResourceType, OffsetSpec,
)
from kafka.protocol.admin import (
    DescribeClusterRequest, DescribeLogDirsRequest, DescribeQuorumRequest, ElectionType,
)
from kafka.protocol.consumer import IsolationLevel, JoinGroupRequest, ListOffsetsRequest
from kafka.protocol.metadata import CoordinatorType, FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer.transaction import InitProducerIdRequest
from kafka.structs import OffsetAndMetadata
import kafka.errors as Errors

from kafka_python_tour import Tour, plain, transactions

WATCHDOG_SECS = 480
TIMEOUT_MS = 30000
CONVERGE_SECS = 30  # how long a change may take to reach every broker

NODES = [1, 2, 3]
BOOTSTRAP_NODE = 1  # the first bootstrap address; groups/txns are coordinated elsewhere

RF3 = "cl-rf3"
ASSIGNED = "cl-assigned"
MOVE = "cl-move"
ELECT = "cl-elect"
TX = "cl-tx"
DOOMED = "cl-doomed"
TOPICS = [RF3, ASSIGNED, MOVE, ELECT, TX, DOOMED]
ASSIGNMENTS = {0: [3, 1, 2], 1: [2, 3, 1], 2: [1, 2, 3]}
MOVE_FROM, MOVE_TO = [1, 2], [2, 3]
ELECT_FROM, ELECT_TO = [1, 2, 3], [2, 1, 3]
PER_PARTITION = 10
WARMUP_GROUP = "cl-warmup-group"
WARMUP_TXN = "cl-warmup-txn"
EARLY = 4  # transactional ids sent to node 1 before __transaction_state exists
MOVE_COUNT = 20

BROKER_KEYS = ["node.id", "broker.id", "log.retention.ms", "log.retention.bytes", "num.partitions",
               "default.replication.factor", "min.insync.replicas", "unclean.leader.election.enable"]
DYN_KEY = "log.retention.ms"
BROKER_VALUE = "3600000"    # set on broker 2 only
CLUSTER_VALUE = "7200000"   # set as the cluster-wide default


def err_name(code):
    return None if code == 0 else Errors.for_code(code).__name__


def poll(fn, done, secs=CONVERGE_SECS, interval=0.25):
    """Calls FN until DONE(its value) or SECS pass; an exception counts as a
    value ("<Type: msg>"). Returns {"reached", "secs", "value"}."""
    start = time.monotonic()
    while True:
        try:
            value = fn()
        except Exception as e:
            value = "%s: %s" % (type(e).__name__, e)
        try:
            reached = bool(done(value))
        except Exception:
            reached = False
        elapsed = time.monotonic() - start
        if reached or elapsed >= secs:
            return {"reached": reached, "secs": round(elapsed, 2), "value": plain(value)}
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Requests to one given broker, on the admin client's connections
# ---------------------------------------------------------------------------

def send_to(admin, request, node_id=None):
    async def go():
        return await admin._manager.send(request, node_id=node_id)
    return admin._manager.run(go)


def metadata_on(admin, node, topics):
    """{topic: "ERROR" | {partition: {"leader", "replicas", "isr"}}} as NODE sees it."""
    request = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=t) for t in topics],
                              allow_auto_topic_creation=False)
    out = {}
    for topic in send_to(admin, request, node).topics:
        if topic.error_code:
            out[topic.name] = err_name(topic.error_code)
            continue
        out[topic.name] = {p.partition_index: {"leader": p.leader_id, "replicas": list(p.replica_nodes),
                                               "isr": sorted(p.isr_nodes), "error": err_name(p.error_code)}
                           for p in topic.partitions}
    return out


def hosted_on(admin, node):
    """The partitions NODE's DescribeLogDirs (all topics) lists, "topic:partition"."""
    response = send_to(admin, DescribeLogDirsRequest(topics=None), node)
    return sorted("%s:%d" % (t.name, p.partition_index)
                  for result in response.results for t in result.topics for p in t.partitions
                  if not t.name.startswith("__"))


def offsets_on(admin, node, tp, spec, replica_id):
    """ListOffsets for one partition sent to NODE as REPLICA_ID (-1 a consumer,
    -2 Kafka's debugging consumer, which a follower answers too)."""
    _Topic = ListOffsetsRequest.ListOffsetsTopic
    request = ListOffsetsRequest(
        replica_id=replica_id, isolation_level=0,
        topics=[_Topic(name=tp.topic, partitions=[_Topic.ListOffsetsPartition(
            partition_index=tp.partition, timestamp=int(spec))])])
    partition = send_to(admin, request, node).topics[0].partitions[0]
    if partition.error_code:
        return err_name(partition.error_code)
    return partition.offset


def configs_on(admin, node, resource_type, name, keys):
    """DescribeConfigs of one resource sent to NODE: {"error", "configs":
    {key: [value, source]}}."""
    request = admin._describe_configs_request([ConfigResource(resource_type, name, keys)], True)
    out = {}
    for result in send_to(admin, request, node).results:
        configs = {c.name: [c.value, admin._get_config_source(c.to_dict(), ConfigResourceType(result.resource_type)).name]
                   for c in result.configs}
        out = {"error": err_name(result.error_code), "message": result.error_message or None, "configs": configs}
    return out


def incremental_alter_on(admin, node, resource_type, name, configs):
    """IncrementalAlterConfigs of one resource sent to NODE (None: any)."""
    request = admin._alter_configs_request([ConfigResource(resource_type, name, configs)], False, True)
    response = send_to(admin, request, node)
    return {"%s:%r" % (ConfigResourceType(r.resource_type).name, r.resource_name):
            (err_name(r.error_code) or "OK") + ((": " + r.error_message) if r.error_message else "")
            for r in response.responses}


def value_on(admin, node, resource_type, name, key):
    described = configs_on(admin, node, resource_type, name, [key])
    if described.get("error"):
        return described["error"]
    return described["configs"].get(key)


def topic_state(admin, topic):
    """{partition: {"leader", "replicas", "isr"}} from describe_topics."""
    described = admin.describe_topics([topic])[0]
    if described["error_code"]:
        return err_name(described["error_code"])
    return {p["partition_index"]: {"leader": p["leader_id"], "replicas": p["replica_nodes"],
                                   "isr": sorted(p["isr_nodes"])}
            for p in described["partitions"]}


def coordinator_on(admin, node, key, key_type):
    """FindCoordinator (v4+, one key) asked of NODE: its node id, or its error."""
    request = FindCoordinatorRequest(key_type=int(key_type), coordinator_keys=[key], min_version=4)
    c = send_to(admin, request, node).coordinators[0]
    return c.node_id if c.error_code == 0 else err_name(c.error_code)


def find_coordinators(admin, prefix, key_type, count=60):
    """{node: [keys it coordinates]} among prefix-0 .. prefix-(count-1), asked
    in one batched FindCoordinator (bypassing the client's cache)."""
    keys = ["%s-%d" % (prefix, i) for i in range(count)]
    request = FindCoordinatorRequest(key_type=int(key_type), coordinator_keys=keys, min_version=4)
    by_node = {}
    for c in send_to(admin, request).coordinators:
        by_node.setdefault(c.node_id if c.error_code == 0 else err_name(c.error_code), []).append(c.key)
    return by_node


def pick_two(by_node):
    """Two keys coordinated by brokers other than the first bootstrap, on two
    different brokers if there are."""
    others = [n for n in sorted(k for k in by_node if isinstance(k, int)) if n != BOOTSTRAP_NODE]
    if len(others) >= 2:
        return by_node[others[0]][0], by_node[others[1]][0]
    if others:
        keys = by_node[others[0]]
        return keys[0], keys[1 % len(keys)]
    raise RuntimeError("no coordinator besides node %d: %s" % (BOOTSTRAP_NODE, by_node))


def internal_ready(admin, topic):
    """Every broker's Metadata shows TOPIC with a leader for every partition."""
    def state():
        out = {}
        for n in NODES:
            seen = metadata_on(admin, n, [topic])[topic]
            out[n] = seen if isinstance(seen, str) else {
                "partitions": len(seen), "leaders": sorted({p["leader"] for p in seen.values()}),
                "replication_factors": sorted({len(p["replicas"]) for p in seen.values()})}
        return out
    return poll(state, lambda v: all(isinstance(v[n], dict) and v[n]["partitions"] > 0
                                      and min(v[n]["leaders"]) >= 0 for n in NODES), secs=60)


# ---------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------

def produce(bootstrap):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_block_ms=TIMEOUT_MS)
    futures = []
    for partition in range(3):
        for i in range(PER_PARTITION):
            futures.append(producer.send(RF3, value=b"rf3-%d-%02d" % (partition, i), partition=partition))
    for i in range(MOVE_COUNT):
        futures.append(producer.send(MOVE, value=b"move-%02d" % i, partition=0))
    for i in range(5):
        futures.append(producer.send(ELECT, value=b"elect-%d" % i, partition=0))
    for partition in range(2):
        for i in range(2):
            futures.append(producer.send(DOOMED, value=b"doomed-%d-%d" % (partition, i), partition=partition))
    producer.flush(timeout=60)
    failed = [str(f.exception) for f in futures if f.failed()]
    producer.close(timeout=30)
    return {"sent": len(futures), "failed": failed[:5]}


def warm_up_group(bootstrap, group):
    """A first consumer group on a fresh cluster (what makes the group
    coordinators' topic): joins, commits, leaves."""
    consumer = KafkaConsumer(RF3, bootstrap_servers=bootstrap, group_id=group, client_id="cl-tour-warmup",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=500)
    assigned = sorted(plain(tp) for tp in consumer.assignment())
    consumer.commit()
    consumer.close(autocommit=False)
    return assigned


def warm_up_txn(bootstrap, transactional_id):
    """A first transactional producer on a fresh cluster: one committed
    transaction on cl-tx."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                             max_block_ms=TIMEOUT_MS)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(TX, value=b"warmup", partition=0)
    producer.commit_transaction()
    producer.close(timeout=30)
    return "committed"


def consume_and_commit(bootstrap, group):
    """GROUP reads cl-rf3 to the end, commits and leaves (Empty)."""
    consumer = KafkaConsumer(RF3, bootstrap_servers=bootstrap, group_id=group, client_id="cl-tour-empty",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 3 * PER_PARTITION and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    consumer.commit()
    consumer.close(autocommit=False)
    return seen


def join_and_stay(bootstrap, group):
    """GROUP gets one member that stays (Stable) until closed."""
    consumer = KafkaConsumer(RF3, bootstrap_servers=bootstrap, group_id=group, client_id="cl-tour-active",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=30000, heartbeat_interval_ms=1000)
    seen = 0
    deadline = time.monotonic() + 60
    while (not consumer.assignment() or seen < 3 * PER_PARTITION) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    consumer.commit()
    return consumer, {"assigned": sorted(plain(tp) for tp in consumer.assignment()), "seen": seen}


def read_all(bootstrap, tp, expect):
    """Every record of TP from the beginning (no group), up to EXPECT or 30 s."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="cl-tour-reader")
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = []
    deadline = time.monotonic() + 30
    while len(values) < expect and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(r.value.decode() for r in records)
    consumer.close(autocommit=False)
    return values


# ---------------------------------------------------------------------------
# The tour
# ---------------------------------------------------------------------------

def cluster_calls(t, admin):
    t.call("describe_cluster/any", admin.describe_cluster)
    for node in NODES:
        t.call("describe_cluster/raw_on_%d" % node, lambda node=node: (lambda r: {
            "error": err_name(r.error_code), "controller_id": r.controller_id,
            "brokers": sorted((b.broker_id, b.port, b.is_fenced) for b in r.brokers)})(
            send_to(admin, DescribeClusterRequest(include_cluster_authorized_operations=False,
                                                  include_fenced_brokers=True), node)))
    t.call("describe_metadata_quorum/any", admin.describe_metadata_quorum)

    def quorum_on(node):
        _Topic = DescribeQuorumRequest.TopicData
        r = send_to(admin, DescribeQuorumRequest(topics=[_Topic(
            topic_name="__cluster_metadata", partitions=[_Topic.PartitionData(partition_index=0)])]), node)
        p = r.topics[0].partitions[0] if r.topics else None
        return {"error": err_name(r.error_code), "leader": p and p.leader_id, "epoch": p and p.leader_epoch,
                "high_watermark": p and p.high_watermark,
                "voters": p and sorted((v.replica_id, v.log_end_offset) for v in p.current_voters),
                "observers": p and [v.replica_id for v in p.observers]}
    for node in NODES:
        t.call("describe_metadata_quorum/raw_on_%d" % node, lambda node=node: quorum_on(node))
    t.call("describe_features/any", admin.describe_features)
    t.call("describe_features/controller", lambda: admin.describe_features(send_request_to_controller=True))


def topic_calls(t, admin):
    t.call("describe_topics", lambda: {topic: topic_state(admin, topic) for topic in TOPICS})
    t.call("describe_topics/metadata_on_each_broker", lambda: {
        node: metadata_on(admin, node, TOPICS) for node in NODES})
    t.call("describe_topic_partitions", lambda: admin.describe_topic_partitions([RF3, ASSIGNED, MOVE, TX]))
    for node in NODES:
        t.call("describe_log_dirs/broker_%d" % node, lambda node=node: admin.describe_log_dirs(
            topic_partitions=TOPICS, brokers=[node]))


def config_calls(t, admin):
    broker = ConfigResourceType.BROKER
    topic = ConfigResourceType.TOPIC
    for node in NODES:
        t.call("describe_configs/broker_%d" % node, lambda node=node: admin.describe_configs(
            [ConfigResource(broker, str(node), BROKER_KEYS)], include_synonyms=True, config_filter="all"))
    t.call("describe_configs/brokers_1_2_3_one_call", lambda: {
        name: {k: v["value"] for k, v in configs.items()}
        for name, configs in admin.describe_configs(
            [ConfigResource(broker, str(n), ["node.id", "broker.id"]) for n in NODES],
            config_filter="all").get("broker", {}).items()})
    t.call("describe_configs/raw_cluster_default_on_each", lambda: {
        node: configs_on(admin, node, broker, "", [DYN_KEY, "log.retention.bytes", "num.partitions"])
        for node in NODES})
    # Kafka answers a broker resource only on that broker (INVALID_REQUEST elsewhere).
    t.call("describe_configs/raw_broker_2_asked_of_1", lambda: configs_on(admin, 1, broker, "2", [DYN_KEY]))

    def views():
        return {
            "own_broker": {n: value_on(admin, n, broker, str(n), DYN_KEY) for n in NODES},
            "default": {n: value_on(admin, n, broker, "", DYN_KEY) for n in NODES},
            "topic_retention": {n: value_on(admin, n, topic, RF3, "retention.ms") for n in NODES},
        }

    def matches(seen, want):
        # want: [value, source]; DEFAULT: any value from the defaults (Kafka
        # shows log.retention.ms as null there: log.retention.hours rules);
        # None: not listed at all.
        if want == "DEFAULT":
            return isinstance(seen, list) and seen[1] in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG")
        return seen == want

    def expect(broker2, others, default):
        def done(v):
            return (isinstance(v, dict)
                    and matches(v["own_broker"][2], broker2)
                    and all(matches(v["own_broker"][n], others) for n in (1, 3))
                    and all(matches(v["default"][n], default) for n in NODES))
        return done

    t.call("alter_configs/broker_2", lambda: {
        "answer": admin.alter_configs([ConfigResource(broker, "2", {DYN_KEY: BROKER_VALUE})]),
        "after": poll(views, expect([BROKER_VALUE, "DYNAMIC_BROKER_CONFIG"], "DEFAULT", None)),
    })
    t.call("alter_configs/raw_cluster_default_via_1", lambda: {
        "answer": incremental_alter_on(admin, 1, broker, "", {DYN_KEY: CLUSTER_VALUE}),
        "after": poll(views, expect([BROKER_VALUE, "DYNAMIC_BROKER_CONFIG"],
                                    [CLUSTER_VALUE, "DYNAMIC_DEFAULT_BROKER_CONFIG"],
                                    [CLUSTER_VALUE, "DYNAMIC_DEFAULT_BROKER_CONFIG"])),
    })
    t.call("reset_configs/broker_2", lambda: {
        "answer": admin.reset_configs([ConfigResource(broker, "2", [DYN_KEY])]),
        "after": poll(views, expect([CLUSTER_VALUE, "DYNAMIC_DEFAULT_BROKER_CONFIG"],
                                    [CLUSTER_VALUE, "DYNAMIC_DEFAULT_BROKER_CONFIG"],
                                    [CLUSTER_VALUE, "DYNAMIC_DEFAULT_BROKER_CONFIG"])),
    })
    t.call("reset_configs/raw_cluster_default_via_3", lambda: {
        "answer": incremental_alter_on(admin, 3, broker, "", {DYN_KEY: (AlterConfigOp.DELETE, None)}),
        "after": poll(views, expect("DEFAULT", "DEFAULT", None)),
    })


def reassignment_calls(t, admin, bootstrap):
    tp = TopicPartition(MOVE, 0)
    before = {}
    t.call("describe_topics/move_before", lambda: before.setdefault("state", topic_state(admin, MOVE)))

    def move():
        answer = admin.alter_partition_reassignments({tp: MOVE_TO}, timeout_ms=TIMEOUT_MS)
        seen = []

        def listing():
            found = admin.list_partition_reassignments(timeout_ms=TIMEOUT_MS)
            if found and (not seen or seen[-1] != plain(found)):
                seen.append(plain(found))
            return found
        done = poll(listing, lambda v: isinstance(v, dict) and tp not in v, secs=60)
        return {"answer": answer, "in_progress_seen": seen[:5], "list_until_empty": done,
                "after": poll(lambda: topic_state(admin, MOVE),
                              lambda v: v[0]["replicas"] == MOVE_TO and v[0]["isr"] == sorted(MOVE_TO)
                              and v[0]["leader"] in MOVE_TO)}
    t.call("alter_partition_reassignments/move_1_2_to_2_3", move)
    t.call("list_partition_reassignments/after_move", lambda: admin.list_partition_reassignments(
        {MOVE: [0]}, timeout_ms=TIMEOUT_MS))
    t.call("reassignment/metadata_on_each_broker", lambda: poll(
        lambda: {n: metadata_on(admin, n, [MOVE])[MOVE] for n in NODES},
        lambda v: all(v[n][0]["replicas"] == MOVE_TO for n in NODES)))
    t.call("reassignment/log_dirs_per_broker", lambda: poll(
        lambda: {n: [p for p in hosted_on(admin, n) if p.startswith(MOVE + ":")] for n in NODES},
        lambda v: v[1] == [] and v[2] == [MOVE + ":0"] and v[3] == [MOVE + ":0"]))
    t.call("reassignment/data_readable", lambda: (lambda values: {
        "count": len(values), "all_there": values == ["move-%02d" % i for i in range(MOVE_COUNT)],
        "first_last": values[:1] + values[-1:],
        "offsets": {"earliest": admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset,
                    "latest": admin.list_partition_offsets({tp: OffsetSpec.LATEST})[tp].offset}})(
        read_all(bootstrap, tp, MOVE_COUNT)))
    # A reassignment to a broker that does not exist.
    t.call("alter_partition_reassignments/to_missing_broker_9", lambda: admin.alter_partition_reassignments(
        {TopicPartition(RF3, 0): [1, 2, 9]}, timeout_ms=TIMEOUT_MS))
    # Cancelling a reassignment that is not in progress (Kafka: NO_REASSIGNMENT_IN_PROGRESS).
    t.call("alter_partition_reassignments/cancel_none_in_progress", lambda: admin.alter_partition_reassignments(
        {TopicPartition(RF3, 1): None}, timeout_ms=TIMEOUT_MS))


def election_calls(t, admin):
    tp = TopicPartition(ELECT, 0)

    def reorder():
        answer = admin.alter_partition_reassignments({tp: ELECT_TO}, timeout_ms=TIMEOUT_MS)
        # Kafka: same replica set, so the move completes at once; the leader
        # (1) stays, no longer the preferred replica (2).
        return {"answer": answer,
                "list_until_empty": poll(lambda: admin.list_partition_reassignments(timeout_ms=TIMEOUT_MS),
                                         lambda v: isinstance(v, dict) and tp not in v),
                "after": poll(lambda: topic_state(admin, ELECT), lambda v: v[0]["replicas"] == ELECT_TO)}
    t.call("alter_partition_reassignments/reorder_elect_to_2_1_3", reorder)

    def preferred():
        answer = admin.elect_leaders(ElectionType.PREFERRED, {ELECT: [0]}, timeout_ms=TIMEOUT_MS,
                                     raise_errors=False)
        return {"answer": answer,
                "after": poll(lambda: {n: metadata_on(admin, n, [ELECT])[ELECT][0] for n in NODES},
                              lambda v: all(v[n]["leader"] == ELECT_TO[0] for n in NODES))}
    t.call("elect_leaders/preferred_after_reorder", preferred)
    t.call("elect_leaders/preferred_again", lambda: admin.elect_leaders(
        ElectionType.PREFERRED, {ELECT: [0]}, timeout_ms=TIMEOUT_MS, raise_errors=False))
    t.call("elect_leaders/preferred_healthy_rf3", lambda: admin.elect_leaders(
        ElectionType.PREFERRED, {RF3: [0, 1, 2]}, timeout_ms=TIMEOUT_MS, raise_errors=False))
    t.call("elect_leaders/unclean_healthy_rf3", lambda: {
        "answer": admin.elect_leaders(ElectionType.UNCLEAN, {RF3: [0, 1, 2]}, timeout_ms=TIMEOUT_MS,
                                      raise_errors=False),
        "after": topic_state(admin, RF3)})
    t.call("elect_leaders/preferred_unknown_partition", lambda: admin.elect_leaders(
        ElectionType.PREFERRED, {RF3: [7]}, timeout_ms=TIMEOUT_MS, raise_errors=False))
    t.call("elect_leaders/data_readable_after", lambda: (lambda tp_: {
        "earliest": admin.list_partition_offsets({tp_: OffsetSpec.EARLIEST})[tp_].offset,
        "latest": admin.list_partition_offsets({tp_: OffsetSpec.LATEST})[tp_].offset})(tp))


def group_calls(t, admin, groups, active_consumer):
    empty_group, active_group = groups["empty"], groups["active"]
    t.call("find_coordinator/groups_on_each_broker", lambda: {
        g: {n: coordinator_on(admin, n, g, CoordinatorType.GROUP) for n in NODES}
        for g in (empty_group, active_group)})
    for node in NODES:
        t.call("list_groups/broker_%d" % node, lambda node=node: admin.list_groups(broker_ids=[node]))
    t.call("list_groups/all", lambda: sorted(
        (g["group_id"], g.get("group_state")) for g in admin.list_groups()
        if g["group_id"] in (empty_group, active_group)))
    t.call("describe_groups", lambda: {
        g: {"state": d["group_state"], "error": d["error"], "members": [
            {"client_id": m["client_id"], "assignment": plain(m.get("member_assignment"))} for m in d["members"]]}
        for g, d in admin.describe_groups([empty_group, active_group]).items()})
    t.call("list_group_offsets/both_groups", lambda: {
        g: {plain(tp): oam.offset for tp, oam in offsets.items()}
        for g, offsets in admin.list_group_offsets({empty_group: None, active_group: None}).items()})

    def committed(group):
        return {plain(tp): oam.offset for tp, oam in admin.list_group_offsets({group: None})[group].items()}

    t.call("alter_group_offsets/empty_group", lambda: {
        "answer": admin.alter_group_offsets(empty_group, {
            TopicPartition(RF3, 0): OffsetAndMetadata(2, "rewound by cluster tour", None)}),
        "after": committed(empty_group)})
    # Kafka refuses an admin commit to a group with members: UNKNOWN_MEMBER_ID.
    t.call("alter_group_offsets/active_group", lambda: {
        "answer": admin.alter_group_offsets(active_group, {
            TopicPartition(RF3, 0): OffsetAndMetadata(1, None, None)}),
        "after": committed(active_group)})
    t.call("delete_groups/while_one_active", lambda: {
        "answer": admin.delete_groups([empty_group, active_group]),
        "after": poll(lambda: sorted(g["group_id"] for g in admin.list_groups()
                                     if g["group_id"] in (empty_group, active_group)),
                      lambda v: v == [active_group], secs=10)})

    def delete_after_leave():
        active_consumer.close(autocommit=False)
        left = poll(lambda: admin.describe_groups([active_group])[active_group]["group_state"],
                    lambda v: v == "Empty")
        answer = admin.delete_groups([active_group])
        return {"left": left, "answer": answer,
                "after": poll(lambda: {n: sorted(g["group_id"] for g in admin.list_groups(broker_ids=[n])
                                                 if g["group_id"] in (empty_group, active_group))
                                       for n in NODES},
                              lambda v: all(v[n] == [] for n in NODES)),
                "describe_after": {g: d["group_state"] for g, d in
                                   admin.describe_groups([empty_group, active_group]).items()}}
    t.call("delete_groups/after_leave", delete_after_leave)


def transaction_calls(t, admin, txns):
    committed_id, open_id = txns["committed"], txns["open"]
    tp = TopicPartition(TX, 0)
    t.call("find_coordinator/transactions_on_each_broker", lambda: {
        x: {n: coordinator_on(admin, n, x, CoordinatorType.TRANSACTION) for n in NODES}
        for x in (committed_id, open_id)})
    t.call("list_transactions/all_brokers", admin.list_transactions)
    for node in NODES:
        t.call("list_transactions/broker_%d" % node, lambda node=node: admin.list_transactions(broker_ids=[node]))
    t.call("describe_transactions", lambda: admin.describe_transactions([committed_id, open_id]))
    t.call("describe_producers/leader", lambda: {
        "leader": topic_state(admin, TX)[0]["leader"], "answer": admin.describe_producers([tp])})
    for node in NODES:
        t.call("describe_producers/broker_%d" % node, lambda node=node: admin.describe_producers([tp], broker_id=node))

    def offsets(isolation):
        return admin.list_partition_offsets({tp: OffsetSpec.LATEST}, isolation_level=isolation)[tp].offset

    def abort():
        described = admin.describe_transactions([open_id])[open_id]
        spec = AbortTransactionSpec(topic_partition=tp, producer_id=described.producer_id,
                                    producer_epoch=described.producer_epoch)
        before = {"lso": offsets(IsolationLevel.READ_COMMITTED), "hw": offsets(IsolationLevel.READ_UNCOMMITTED)}
        answer = admin.abort_transaction(spec)
        return {"spec": spec, "answer": answer, "before": before,
                "after": poll(lambda: {"lso": offsets(IsolationLevel.READ_COMMITTED),
                                       "hw": offsets(IsolationLevel.READ_UNCOMMITTED)},
                              lambda v: v["lso"] == v["hw"]),
                "producers_after": admin.describe_producers([tp]),
                "coordinator_after": admin.describe_transactions([open_id])[open_id]}
    t.call("abort_transaction/open", abort)


def record_calls(t, admin):
    tp = TopicPartition(RF3, 0)
    cut = 4

    def delete_records():
        answer = admin.delete_records({tp: cut}, timeout_ms=TIMEOUT_MS)
        replicas = topic_state(admin, RF3)[0]["replicas"]
        leader_view = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset
        first = {n: offsets_on(admin, n, tp, OffsetSpec.EARLIEST, -2) for n in replicas}
        return {
            "answer": answer,
            "earliest_list_partition_offsets": leader_view,
            "earliest_per_replica_debug_first": first,
            "earliest_per_replica_debug": poll(
                lambda: {n: offsets_on(admin, n, tp, OffsetSpec.EARLIEST, -2) for n in replicas},
                lambda v: all(v[n] == cut for n in replicas)),
            "earliest_per_broker_as_consumer": {n: offsets_on(admin, n, tp, OffsetSpec.EARLIEST, -1)
                                                for n in replicas},
            "latest_per_replica_debug": {n: offsets_on(admin, n, tp, OffsetSpec.LATEST, -2) for n in replicas},
        }
    t.call("delete_records/rf3_partition_0", delete_records)
    # Beyond the high watermark: Kafka answers OFFSET_OUT_OF_RANGE.
    def beyond_high_watermark():
        try:
            answer = admin.delete_records({TopicPartition(RF3, 1): 1000}, timeout_ms=TIMEOUT_MS)
        except Errors.OffsetOutOfRangeError as e:
            return {"expected_error": "%s: %s" % (type(e).__name__, e)}
        raise AssertionError("expected OFFSET_OUT_OF_RANGE, got %r" % (answer,))
    t.call("delete_records/beyond_high_watermark", beyond_high_watermark)


def partition_calls(t, admin, bootstrap):
    def grow():
        answer = admin.create_partitions({RF3: 5}, timeout_ms=TIMEOUT_MS)
        after = poll(lambda: {n: metadata_on(admin, n, [RF3])[RF3] for n in NODES},
                     lambda v: all(len(v[n]) == 5 and all(len(p["replicas"]) == 3 and len(p["isr"]) == 3
                                                          and p["leader"] >= 0 for p in v[n].values())
                                   for n in NODES))
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=TIMEOUT_MS)
        sent = producer.send(RF3, value=b"new-partition", partition=4).get(timeout=30)
        producer.close(timeout=10)
        return {"answer": answer, "after": after, "produced_to_4": {"offset": sent.offset},
                "latest_4": admin.list_partition_offsets(
                    {TopicPartition(RF3, 4): OffsetSpec.LATEST})[TopicPartition(RF3, 4)].offset}
    t.call("create_partitions/rf3_to_5", grow)
    t.call("create_partitions/assigned_to_4_explicit", lambda: {
        "answer": admin.create_partitions({ASSIGNED: {"count": 4, "assignments": [[2, 3, 1]]}},
                                          timeout_ms=TIMEOUT_MS),
        "after": poll(lambda: topic_state(admin, ASSIGNED),
                      lambda v: len(v) == 4 and v[3]["replicas"] == [2, 3, 1] and v[3]["leader"] == 2)})
    t.call("create_partitions/shrink_refused", lambda: admin.create_partitions(
        {RF3: 2}, timeout_ms=TIMEOUT_MS, raise_errors=False))
    t.call("create_partitions/assignment_to_missing_broker", lambda: admin.create_partitions(
        {RF3: {"count": 6, "assignments": [[1, 2, 9]]}}, timeout_ms=TIMEOUT_MS, raise_errors=False))


def delete_calls(t, admin):
    def delete():
        answer = admin.delete_topics([DOOMED], timeout_ms=TIMEOUT_MS)
        return {
            "answer": answer,
            "metadata_each_broker": poll(lambda: {n: metadata_on(admin, n, [DOOMED])[DOOMED] for n in NODES},
                                         lambda v: all(v[n] == "UnknownTopicOrPartitionError" for n in NODES)),
            "log_dirs_each_broker": poll(lambda: {n: [p for p in hosted_on(admin, n) if p.startswith(DOOMED + ":")]
                                                  for n in NODES},
                                         lambda v: all(v[n] == [] for n in NODES)),
            "still_listed": DOOMED in admin.list_topics(),
        }
    t.call("delete_topics/doomed", delete)
    t.call("delete_topics/again_unknown", lambda: admin.delete_topics(
        [DOOMED], timeout_ms=TIMEOUT_MS, raise_errors=False))


def internal_topic_calls(t, admin, bootstrap):
    """The coordinators' topics on a fresh cluster: who each broker names as
    coordinator before they exist (Kafka: COORDINATOR_NOT_AVAILABLE while it
    creates the topic, then the partition leader, the same from every broker),
    then a first group and a first transactional producer, and whether any
    broker keeps a group or transaction it does not coordinate."""
    group, txn = WARMUP_GROUP, WARMUP_TXN
    t.call("find_coordinator/fresh_cluster_each_broker", lambda: {
        n: {"group": coordinator_on(admin, n, group, CoordinatorType.GROUP),
            "transaction": coordinator_on(admin, n, txn, CoordinatorType.TRANSACTION)} for n in NODES})
    # Groups and transactional ids first handled by node 1 while the topics
    # do not exist yet (Kafka refuses: NOT_COORDINATOR/COORDINATOR_NOT_AVAILABLE).
    # (cl-early-group-1 first: with the partition leaders Sluice places, node 1
    # does not lead its __consumer_offsets partition; the first request makes
    # the topic.)
    early_groups = ["cl-early-group-%d" % i for i in (1, 2, 0, 3)]
    early_txns = ["cl-early-txn-%d" % i for i in range(EARLY)]
    def join_via_node_1(group):
        request = JoinGroupRequest(
            group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
            group_instance_id=None, protocol_type="consumer",
            protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")])
        r = send_to(admin, request, 1)
        return {"error": err_name(r.error_code), "member_id": r.member_id}
    # The very first group request (it makes __consumer_offsets): a JoinGroup.
    t.call("internal_topics/early_join_via_node_1", lambda: {early_groups[0]: join_via_node_1(early_groups[0])})
    t.call("internal_topics/early_commits_via_node_1", lambda: {
        g: admin.alter_group_offsets(g, {TopicPartition(RF3, 0): OffsetAndMetadata(i + 1, "early", None)},
                                     group_coordinator_id=1)
        for i, g in enumerate(early_groups)})
    t.call("internal_topics/early_init_producer_id_via_node_1", lambda: {
        x: (lambda r: {"error": err_name(r.error_code), "producer_id": r.producer_id, "epoch": r.producer_epoch})(
            send_to(admin, InitProducerIdRequest(transactional_id=x, transaction_timeout_ms=60000), 1))
        for x in early_txns})
    t.call("internal_topics/early_groups_after", lambda: {
        "consumer_offsets_on_each_broker": internal_ready(admin, "__consumer_offsets"),
        "groups": {g: {
            "coordinator_on_each_broker": {n: coordinator_on(admin, n, g, CoordinatorType.GROUP) for n in NODES},
            "listed_by": {n: [(x["group_id"], x.get("group_state")) for x in admin.list_groups(broker_ids=[n])
                              if x["group_id"] == g] for n in NODES},
            "offsets_at_coordinator": (lambda o: {plain(tp): oam.offset for tp, oam in o.items()})(
                admin.list_group_offsets({g: None})[g]),
        } for g in early_groups}})
    t.call("internal_topics/early_txns_after", lambda: {
        "transaction_state_on_each_broker": internal_ready(admin, "__transaction_state"),
        "txns": {x: {
            "coordinator_on_each_broker": {n: coordinator_on(admin, n, x, CoordinatorType.TRANSACTION)
                                           for n in NODES},
            "listed_by": {n: [plain(l) for l in admin.list_transactions(broker_ids=[n])[n]
                              if l.transactional_id == x] for n in NODES},
        } for x in early_txns}})
    def describe_early(x):
        # Only an id whose coordinator took the early InitProducerId exists.
        try:
            return admin.describe_transactions([x])
        except Errors.TransactionalIdNotFoundError:
            return {"not_found": True}
    for x in early_txns:
        t.call("internal_topics/early_txn_describe/" + x, lambda x=x: describe_early(x))
    t.call("internal_topics/first_group", lambda: {
        "assigned": warm_up_group(bootstrap, group),
        "consumer_offsets_on_each_broker": internal_ready(admin, "__consumer_offsets"),
        "coordinator_on_each_broker": poll(
            lambda: {n: coordinator_on(admin, n, group, CoordinatorType.GROUP) for n in NODES},
            lambda v: len(set(v.values())) == 1 and isinstance(v[1], int)),
        "listed_by": {n: [(g["group_id"], g.get("group_state")) for g in admin.list_groups(broker_ids=[n])
                          if g["group_id"] == group] for n in NODES},
        "offsets": {plain(tp): oam.offset
                    for tp, oam in admin.list_group_offsets({group: None})[group].items()}})
    t.call("internal_topics/first_transaction", lambda: {
        "producer": warm_up_txn(bootstrap, txn),
        "transaction_state_on_each_broker": internal_ready(admin, "__transaction_state"),
        "coordinator_on_each_broker": poll(
            lambda: {n: coordinator_on(admin, n, txn, CoordinatorType.TRANSACTION) for n in NODES},
            lambda v: len(set(v.values())) == 1 and isinstance(v[1], int)),
        "listed_by": {n: [plain(x) for x in admin.list_transactions(broker_ids=[n])[n]
                          if x.transactional_id == txn] for n in NODES},
        "described": admin.describe_transactions([txn])})


def create_topics(t, admin):
    t.call("create_topics/stage", lambda: admin.create_topics({
        RF3: {"num_partitions": 3, "replication_factor": 3},
        ASSIGNED: {"assignments": ASSIGNMENTS},
        MOVE: {"assignments": {0: MOVE_FROM}},
        ELECT: {"assignments": {0: ELECT_FROM}},
        TX: {"num_partitions": 1, "replication_factor": 3},
        DOOMED: {"num_partitions": 2, "replication_factor": 3},
    }, timeout_ms=TIMEOUT_MS))
    t.call("wait_for_topics", lambda: admin.wait_for_topics(TOPICS, timeout_ms=TIMEOUT_MS))
    t.call("create_topics/visible_on_each_broker", lambda: poll(
        lambda: {n: metadata_on(admin, n, TOPICS) for n in NODES},
        lambda v: all(isinstance(v[n][topic], dict) and v[n][topic]
                      and all(p["leader"] >= 0 for p in v[n][topic].values())
                      for n in NODES for topic in TOPICS)))
    t.call("create_topics/assignments_honoured", lambda: {
        "assigned": {p: (s["replicas"], s["leader"]) for p, s in topic_state(admin, ASSIGNED).items()},
        "move": topic_state(admin, MOVE), "elect": topic_state(admin, ELECT),
        "rf3": {p: (s["replicas"], s["isr"], s["leader"]) for p, s in topic_state(admin, RF3).items()}})
    # What a cluster must refuse (Kafka: INVALID_REPLICATION_FACTOR, then INVALID_REPLICA_ASSIGNMENT x3).
    t.call("create_topics/refused", lambda: admin.create_topics({
        "cl-rf4": {"num_partitions": 1, "replication_factor": 4},
        "cl-missing-broker": {"assignments": {0: [1, 9]}},
        "cl-duplicate-replica": {"assignments": {0: [2, 2]}},
        "cl-uneven": {"assignments": {0: [1, 2], 1: [3]}},
    }, timeout_ms=TIMEOUT_MS, raise_errors=False))
    t.call("create_topics/refused_not_created", lambda: sorted(
        name for name in admin.list_topics()
        if name in ("cl-rf4", "cl-missing-broker", "cl-duplicate-replica", "cl-uneven")))


def main():
    bootstrap = sys.argv[1]
    faulthandler.dump_traceback_later(WATCHDOG_SECS, exit=True)
    t = Tour(stamp=True)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="cl-tour-admin",
                             request_timeout_ms=TIMEOUT_MS, bootstrap_timeout_ms=TIMEOUT_MS)

    create_topics(t, admin)
    setup = {"produced": None}
    try:
        setup["produced"] = produce(bootstrap)
    except Exception as e:
        setup["produce_error"] = "%s: %s" % (type(e).__name__, e)
    internal_topic_calls(t, admin, bootstrap)

    open_txn = active_consumer = None
    groups = {"empty": "cl-group-empty", "active": "cl-group-active"}
    txns = {"committed": "cl-txn-committed", "open": "cl-txn-open"}
    try:
        groups = dict(zip(("empty", "active"), pick_two(find_coordinators(admin, "cl-group", CoordinatorType.GROUP))))
        txns = dict(zip(("committed", "open"), pick_two(find_coordinators(admin, "cl-txn", CoordinatorType.TRANSACTION))))
        setup["groups"] = groups
        setup["transactional_ids"] = txns
        setup["consumed_empty_group"] = consume_and_commit(bootstrap, groups["empty"])
        active_consumer, setup["active_group"] = join_and_stay(bootstrap, groups["active"])
        open_txn = transactions(bootstrap, TX, txns["committed"], txns["open"])
        setup["transactions"] = "committed one, left one open"
    except Exception as e:
        setup["error"] = "%s: %s" % (type(e).__name__, e)
    t.results["_setup"] = setup

    cluster_calls(t, admin)
    topic_calls(t, admin)
    config_calls(t, admin)
    reassignment_calls(t, admin, bootstrap)
    election_calls(t, admin)
    if active_consumer is not None:
        group_calls(t, admin, groups, active_consumer)
    transaction_calls(t, admin, txns)
    record_calls(t, admin)
    partition_calls(t, admin, bootstrap)
    delete_calls(t, admin)

    if open_txn is not None:
        open_txn.close(timeout=10)
    admin.close()
    print(json.dumps(t.results, default=str))
    faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main()
