"""A tour of every public method of confluent-kafka-python 2.x's AdminClient.

Sets the stage first: creates the topics ck-a (3 partitions), ck-scratch
(2 partitions, retention.ms set) and ck-tx (1 partition) through
create_topics; produces 10 messages to each partition of ck-a, a second apart
by timestamp, with confluent-kafka's own Producer; runs the consumer group
ck-group to the end of ck-a, commits and closes (so the group is Empty); joins
the group ck-static with a static member (group.instance.id ck-static-1) that
closes without leaving (so that group stays Stable with one member); commits
one transaction on ck-tx as ck-txn-committed and leaves one open as
ck-txn-open (3 records after the committed 5 and their marker).

Then calls each admin method, as an operator would, each in its own
try/except; methods that change state also look at the state afterwards
(the "after" part of their result). Where a method is worth calling more
than one way (filters, isolation levels, validate_only, error cases, ...)
its result holds one outcome per variant, and the method counts as failed if
any variant did. A variant Kafka 4.x answers with an error (topic already
exists, group not empty, no authorizer, ...) is ok when it gets exactly that
error ({"expected_error": ...}) and failed when it gets anything else,
success included. Every wait is bounded (request_timeout on each admin call
but elect_leaders, a timeout on every future), and the whole run by a
watchdog.

Usage: confluent_kafka_admin_tour.py BOOTSTRAP [DEBUG]
  DEBUG, if given, is librdkafka's `debug` setting for the admin client
  (e.g. admin,protocol); its log goes to stderr.
Prints one JSON line: {"<method>": {"ok": true, "result": ..} or
{"ok": false, "error": "<ExceptionType: message>"}, ...} with one entry per
admin method (plus "_setup" for the stage itself). A failed method with
variants also carries "result" (every variant's outcome); a dict of futures
of which only some failed also carries "partial" (what the others returned).
"""
import concurrent.futures
import enum
import faulthandler
import json
import sys
import time
import warnings

from confluent_kafka import (
    ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType, Consumer, ElectionType,
    IsolationLevel, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition, Uuid,
)
from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, AlterConfigOpType,
    ConfigEntry, ConfigResource, ConfigSource, NewPartitions, NewTopic, OffsetSpec, ResourcePatternType, ResourceType,
    ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion, UserScramCredentialUpsertion,
)

WATCHDOG_SECS = 300
REQUEST_SECS = 30.0   # request_timeout / operation_timeout of each admin call
WAIT_SECS = 40.0      # how long any one future is waited for

TOPIC = "ck-a"
SCRATCH = "ck-scratch"
TX_TOPIC = "ck-tx"
VALIDATE_ONLY_TOPIC = "ck-validate-only"
MISSING_TOPIC = "ck-never-created"
GROUP = "ck-group"
STATIC_GROUP = "ck-static"
STATIC_ID = "ck-static-1"
TXN_COMMITTED = "ck-txn-committed"
TXN_OPEN = "ck-txn-open"
USER = "ck-user"
PER_PARTITION = 10

# Every public AdminClient method (dir(AdminClient) in 2.16.2). poll and
# set_sasl_credentials send nothing to the broker; they are called anyway.
METHODS = """create_topics delete_topics list_topics cluster_id list_groups create_partitions
describe_configs alter_configs incremental_alter_configs create_acls describe_acls delete_acls
list_consumer_groups describe_consumer_groups list_consumer_group_offsets
alter_consumer_group_offsets delete_consumer_groups describe_topics describe_cluster
describe_user_scram_credentials alter_user_scram_credentials list_offsets delete_records
elect_leaders poll set_sasl_credentials""".split()


# ---------------------------------------------------------------------------
# Plumbing
# ---------------------------------------------------------------------------

def key_str(key):
    """A dict key as a string: TopicPartition as "topic:partition",
    ConfigResource as "TYPE:name", the rest through plain()."""
    if isinstance(key, str):
        return key
    if isinstance(key, TopicPartition):
        return "%s:%d" % (key.topic, key.partition)
    if isinstance(key, ConfigResource):
        return "%s:%s" % (key.restype.name, key.name)
    value = plain(key)
    return value if isinstance(value, str) else json.dumps(value, default=str)


def plain(value):
    """VALUE made JSON-able: enums by name, KafkaError as "NAME: text",
    TopicPartition as a dict of its set fields, other objects through their
    attributes, bytes decoded, sets as sorted lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, KafkaError):
        return "%s: %s" % (value.name(), value.str())
    if isinstance(value, KafkaException) and value.args and isinstance(value.args[0], KafkaError):
        return "KafkaException: " + plain(value.args[0])
    if isinstance(value, Exception):
        return "%s: %s" % (type(value).__name__, value)
    if isinstance(value, TopicPartition):
        out = {"topic": value.topic, "partition": value.partition, "offset": value.offset}
        if value.metadata:
            out["metadata"] = value.metadata
        if value.leader_epoch is not None and value.leader_epoch >= 0:
            out["leader_epoch"] = value.leader_epoch
        if value.error is not None:
            out["error"] = plain(value.error)
        return out
    if isinstance(value, ConfigEntry):
        out = {key: plain(item) for key, item in vars(value).items() if not key.startswith("_")}
        if isinstance(value.source, int):  # librdkafka hands the source over as a bare int
            out["source"] = ConfigSource(value.source).name
        return out
    if isinstance(value, (AclBinding, Uuid)):
        return repr(value) if isinstance(value, AclBinding) else str(value)
    if isinstance(value, dict):
        return {key_str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain(item) for item in value), key=str)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if hasattr(value, "__dict__"):
        return {key: plain(item) for key, item in vars(value).items() if not key.startswith("_")}
    return str(value)


def describe(error):
    return plain(error) if isinstance(error, Exception) else str(error)


class Failed(Exception):
    """Some futures of a dict of futures failed: keeps what the others gave."""

    def __init__(self, errors, partial):
        super().__init__("; ".join("%s: %s" % (key_str(k), describe(e)) for k, e in errors.items()))
        self.errors = errors
        self.partial = partial


def settle(futures):
    """Waits (bounded) for a future or a dict of futures; a dict comes back as
    a dict of results, or raises Failed naming each key that failed."""
    if isinstance(futures, concurrent.futures.Future):
        return futures.result(timeout=WAIT_SECS)
    done, errors = {}, {}
    for key, future in futures.items():
        try:
            done[key] = future.result(timeout=WAIT_SECS)
        except Exception as e:  # noqa: BLE001 - each key's failure is reported
            errors[key] = e
    if errors:
        raise Failed(errors, done)
    return done


class Variants(dict):
    """Outcomes of one method called several ways: name -> outcome."""


def outcome(fn):
    try:
        return {"ok": True, "result": plain(fn())}
    except Failed as e:
        return {"ok": False, "error": "Failed: %s" % e, "partial": plain(e.partial)}
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        return {"ok": False, "error": describe(e)}


def variants(**fns):
    """Calls each of FNS (in order), keeping each one's outcome."""
    return Variants((name, outcome(fn)) for name, fn in fns.items())


class Unexpected(Exception):
    """A call Kafka answers with an error succeeded, or failed otherwise."""


def error_name(error):
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0].name()
    return type(error).__name__


def expect_error(codes, fn):
    """FN as a variant that Kafka 4.x answers with one of the error CODES (a
    name or a tuple of names): ok if FN raised exactly that, else a failure."""
    codes = (codes,) if isinstance(codes, str) else tuple(codes)

    def run():
        try:
            result = fn()
        except Failed as e:
            if {error_name(err) for err in e.errors.values()} <= set(codes):
                return {"expected_error": str(e)}
            raise Unexpected("expected %s, got: %s" % ("|".join(codes), e))
        except Exception as e:  # noqa: BLE001
            if error_name(e) in codes:
                return {"expected_error": describe(e)}
            raise Unexpected("expected %s, got: %s" % ("|".join(codes), describe(e)))
        raise Unexpected("expected %s, got success: %s" % ("|".join(codes), json.dumps(plain(result), default=str)))
    return run


class Tour:
    """Runs the calls and keeps one outcome per name."""

    def __init__(self):
        self.results = {}

    def call(self, name, fn):
        try:
            result = fn()
        except Failed as e:
            self.results[name] = {"ok": False, "error": "Failed: %s" % e, "partial": plain(e.partial)}
            return self.results[name]
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            self.results[name] = {"ok": False, "error": describe(e)}
            return self.results[name]
        if isinstance(result, Variants):
            failed = {k: o["error"] for k, o in result.items() if not o["ok"]}
            if failed:
                self.results[name] = {"ok": False, "error": "; ".join("%s: %s" % kv for kv in failed.items()),
                                      "result": dict(result)}
            else:
                self.results[name] = {"ok": True, "result": {k: o["result"] for k, o in result.items()}}
        else:
            self.results[name] = {"ok": True, "result": plain(result)}
        return self.results[name]


# ---------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------

def produce(bootstrap, base_ms):
    """PER_PARTITION messages to each partition of ck-a; message i is stamped
    BASE_MS + i seconds, so offset i is the one found by timestamp."""
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(plain(err))

    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "ck-tour-producer", "linger.ms": 5,
                         "message.timeout.ms": 30000})
    for partition in range(3):
        for i in range(PER_PARTITION):
            producer.produce(TOPIC, key=b"k-%d" % i, value=b"v-%d-%02d" % (partition, i), partition=partition,
                             timestamp=base_ms + i * 1000, on_delivery=delivered)
    left = producer.flush(30)
    producer.close()
    if left or errors:
        raise RuntimeError("produce: %d undelivered, errors %s" % (left, errors[:5]))
    return 3 * PER_PARTITION


def consume_and_commit(bootstrap):
    """ck-group reads ck-a to the end, commits and leaves (close())."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": "ck-tour-consumer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([TOPIC])
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 3 * PER_PARTITION and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen += 1
        committed = consumer.commit(asynchronous=False)
        return {"seen": seen, "committed": {key_str(tp): tp.offset for tp in committed or []}}
    finally:
        consumer.close()


def join_static(bootstrap):
    """ck-static gets a static member that closes without a LeaveGroup, so it
    stays in the group until its session times out."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": STATIC_GROUP,
                         "group.instance.id": STATIC_ID, "client.id": "ck-tour-static",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 120000, "max.poll.interval.ms": 300000})
    try:
        consumer.subscribe([TOPIC])
        deadline = time.monotonic() + 60
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.5)
        return {"assigned": sorted(key_str(tp) for tp in consumer.assignment())}
    finally:
        consumer.close()


def transactions(bootstrap):
    """One committed transaction, and one left open: returns the producer
    holding the open one (abort it at the end)."""
    committed = Producer({"bootstrap.servers": bootstrap, "transactional.id": TXN_COMMITTED,
                          "client.id": "ck-tour-txn-committed"})
    committed.init_transactions(30)
    committed.begin_transaction()
    for i in range(5):
        committed.produce(TX_TOPIC, value=b"committed-%d" % i, partition=0)
    committed.commit_transaction(30)
    committed.close()

    open_ = Producer({"bootstrap.servers": bootstrap, "transactional.id": TXN_OPEN,
                      "client.id": "ck-tour-txn-open", "transaction.timeout.ms": 600000})
    open_.init_transactions(30)
    open_.begin_transaction()
    for i in range(3):
        open_.produce(TX_TOPIC, value=b"open-%d" % i, partition=0)
    left = open_.flush(30)
    if left:
        raise RuntimeError("open transaction: %d records undelivered" % left)
    return open_


# ---------------------------------------------------------------------------
# Read-backs
# ---------------------------------------------------------------------------

def kw(**extra):
    return dict(request_timeout=REQUEST_SECS, **extra)


def topic_configs(admin, topic, names=None):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = settle(admin.describe_configs([resource], **kw()))[resource]
    return {k: e.value for k, e in entries.items() if names is None or k in names}


def offsets(admin, tps, spec, isolation_level=None):
    extra = {} if isolation_level is None else {"isolation_level": isolation_level}
    found = settle(admin.list_offsets({tp: spec for tp in tps}, **kw(**extra)))
    return {key_str(tp): {"offset": info.offset, "timestamp": info.timestamp, "leader_epoch": info.leader_epoch}
            for tp, info in found.items()}


def partition_count(admin, topic):
    return len(settle(admin.describe_topics(TopicCollection([topic]), **kw()))[topic].partitions)


def group_offsets(admin, group):
    found = settle(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], **kw()))[group]
    return {key_str(tp): tp.offset for tp in found.topic_partitions}


def group_listing(admin):
    listed = settle(admin.list_consumer_groups(**kw()))
    return {g.group_id: plain(getattr(g, "state", None)) for g in listed.valid}


def topic_names(admin):
    return sorted(admin.list_topics(timeout=REQUEST_SECS).topics)


# ---------------------------------------------------------------------------
# The tour
# ---------------------------------------------------------------------------

def stage_topics(t, admin):
    def create_topics():
        return variants(
            create=lambda: settle(admin.create_topics([
                NewTopic(TOPIC, num_partitions=3, replication_factor=1),
                NewTopic(SCRATCH, num_partitions=2, replication_factor=1, config={"retention.ms": "86400000"}),
                NewTopic(TX_TOPIC, num_partitions=1, replication_factor=1),
            ], **kw(operation_timeout=REQUEST_SECS))),
            # Expected: success, and the topic not created.
            validate_only=lambda: {
                "answer": settle(admin.create_topics([NewTopic(VALIDATE_ONLY_TOPIC, num_partitions=2)],
                                                     validate_only=True, **kw())),
                "listed_after": VALIDATE_ONLY_TOPIC in topic_names(admin),
            },
            # Expected: TOPIC_ALREADY_EXISTS.
            already_exists=expect_error("TOPIC_ALREADY_EXISTS", lambda: settle(
                admin.create_topics([NewTopic(TOPIC, num_partitions=3)], **kw()))),
            after=lambda: {name: partition_count(admin, name) for name in (TOPIC, SCRATCH, TX_TOPIC)},
        )
    t.call("create_topics", create_topics)


def cluster_calls(t, admin):
    t.call("list_topics", lambda: variants(
        all=lambda: topic_names(admin),
        one=lambda: admin.list_topics(topic=TOPIC, timeout=REQUEST_SECS).topics[TOPIC],
        metadata=lambda: {k: v for k, v in vars(admin.list_topics(timeout=REQUEST_SECS)).items()
                          if k != "topics"},
    ))
    t.call("cluster_id", lambda: admin.cluster_id(timeout=REQUEST_SECS))
    t.call("describe_cluster", lambda: variants(
        plain=lambda: settle(admin.describe_cluster(**kw())),
        authorized_operations=lambda: settle(admin.describe_cluster(include_authorized_operations=True, **kw())),
    ))


def topic_calls(t, admin, base_ms):
    t.call("describe_topics", lambda: variants(
        plain=lambda: settle(admin.describe_topics(TopicCollection([TOPIC, TX_TOPIC]), **kw())),
        authorized_operations=lambda: settle(admin.describe_topics(
            TopicCollection([TOPIC]), include_authorized_operations=True, **kw())),
        # Expected: UNKNOWN_TOPIC_OR_PART, and the topic not auto-created.
        missing=expect_error("UNKNOWN_TOPIC_OR_PART", lambda: settle(
            admin.describe_topics(TopicCollection([MISSING_TOPIC]), **kw()))),
        missing_listed_after=lambda: MISSING_TOPIC in topic_names(admin),
    ))

    tps = [TopicPartition(TOPIC, p) for p in range(3)]
    tx_tp = TopicPartition(TX_TOPIC, 0)
    t.call("list_offsets", lambda: variants(
        earliest=lambda: offsets(admin, tps, OffsetSpec.earliest()),
        latest=lambda: offsets(admin, tps, OffsetSpec.latest()),
        # Expected: offset PER_PARTITION - 1 with timestamp base + 9 s.
        max_timestamp=lambda: offsets(admin, tps, OffsetSpec.max_timestamp()),
        # Expected: offset 5.
        at_base_plus_5s=lambda: offsets(admin, tps, OffsetSpec.for_timestamp(base_ms + 5000)),
        # Expected: -1 (no such offset) past the last timestamp.
        after_last_timestamp=lambda: offsets(admin, tps[:1], OffsetSpec.for_timestamp(base_ms + 3600 * 1000)),
        # ck-tx: 5 committed + marker, then 3 in the open transaction.
        # Expected: read_uncommitted latest 9 (high watermark), read_committed latest 6 (LSO).
        tx_latest_read_uncommitted=lambda: offsets(admin, [tx_tp], OffsetSpec.latest(),
                                                   IsolationLevel.READ_UNCOMMITTED),
        tx_latest_read_committed=lambda: offsets(admin, [tx_tp], OffsetSpec.latest(),
                                                 IsolationLevel.READ_COMMITTED),
        tx_earliest_read_committed=lambda: offsets(admin, [tx_tp], OffsetSpec.earliest(),
                                                   IsolationLevel.READ_COMMITTED),
        # A partition that does not exist: librdkafka finds no leader for it
        # in the metadata and fails locally (_NOENT) without asking.
        no_such_partition=expect_error(("UNKNOWN_TOPIC_OR_PART", "_NOENT"), lambda: offsets(
            admin, [TopicPartition(TOPIC, 7)], OffsetSpec.latest())),
    ))

    def delete_records():
        answer = settle(admin.delete_records([TopicPartition(TOPIC, 0, 3)], **kw(operation_timeout=REQUEST_SECS)))
        return {"answer": answer, "earliest_after": offsets(admin, tps[:1], OffsetSpec.earliest())}
    t.call("delete_records", lambda: variants(
        to_offset_3=delete_records,
        # OFFSET_END (-1): delete everything in ck-a/2; expected low watermark 10.
        to_end=lambda: {
            "answer": settle(admin.delete_records([TopicPartition(TOPIC, 2, -1)],
                                                  **kw(operation_timeout=REQUEST_SECS))),
            "earliest_after": offsets(admin, tps[2:], OffsetSpec.earliest()),
        },
        # Expected: OFFSET_OUT_OF_RANGE past the high watermark.
        past_end=expect_error("OFFSET_OUT_OF_RANGE", lambda: settle(
            admin.delete_records([TopicPartition(TOPIC, 1, 99)], **kw()))),
    ))

    t.call("create_partitions", lambda: variants(
        # Expected: success, count unchanged (2).
        validate_only=lambda: {
            "answer": settle(admin.create_partitions([NewPartitions(SCRATCH, 6)], validate_only=True, **kw())),
            "partitions_after": partition_count(admin, SCRATCH),
        },
        grow_to_4=lambda: {
            "answer": settle(admin.create_partitions([NewPartitions(SCRATCH, 4)],
                                                     **kw(operation_timeout=REQUEST_SECS))),
            "partitions_after": partition_count(admin, SCRATCH),
        },
        # Expected: INVALID_PARTITIONS (cannot shrink).
        shrink_to_1=expect_error("INVALID_PARTITIONS", lambda: settle(
            admin.create_partitions([NewPartitions(SCRATCH, 1)], **kw()))),
    ))

    # One replica each, already the leader: Kafka answers ELECTION_NOT_NEEDED
    # per partition (as the value of that partition's entry, not as a raise).
    # confluent-kafka 2.16.2's elect_leaders cannot take request_timeout or
    # operation_timeout (its C keyword list is short: SystemError / TypeError),
    # so it runs on the defaults, still bounded by settle().
    def elected(election_type, partitions):
        found = settle(admin.elect_leaders(election_type, partitions))
        return {key_str(tp): plain(err) for tp, err in found.items()}
    t.call("elect_leaders", lambda: variants(
        preferred=lambda: elected(ElectionType.PREFERRED, [TopicPartition(TOPIC, p) for p in range(3)]),
        unclean=lambda: elected(ElectionType.UNCLEAN, [TopicPartition(TOPIC, 0)]),
        all_partitions=lambda: elected(ElectionType.PREFERRED, None),
        # Expected: UNKNOWN_TOPIC_OR_PART for that partition.
        missing_topic=lambda: elected(ElectionType.PREFERRED, [TopicPartition(MISSING_TOPIC, 0)]),
    ))


def config_calls(t, admin):
    def describe_configs():
        topic = ConfigResource(ResourceType.TOPIC, SCRATCH)
        broker = ConfigResource(ResourceType.BROKER, "0")
        return variants(
            topic_and_broker=lambda: settle(admin.describe_configs([topic, broker], **kw())),
            missing_topic=expect_error("UNKNOWN_TOPIC_OR_PART", lambda: settle(admin.describe_configs(
                [ConfigResource(ResourceType.TOPIC, MISSING_TOPIC)], **kw()))),
        )
    t.call("describe_configs", describe_configs)

    watched = ("retention.ms", "cleanup.policy", "segment.bytes")

    def alter_configs():
        resource = ConfigResource(ResourceType.TOPIC, SCRATCH,
                                  set_config={"retention.ms": "3600000", "cleanup.policy": "compact"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            answer = settle(admin.alter_configs([resource], **kw()))
            validate_only = settle(admin.alter_configs(
                [ConfigResource(ResourceType.TOPIC, SCRATCH, set_config={"retention.ms": "1"})],
                validate_only=True, **kw()))
        return {"answer": answer, "validate_only_answer": validate_only,
                "after": topic_configs(admin, SCRATCH, watched)}
    t.call("alter_configs", alter_configs)

    def incremental(*entries, validate_only=False):
        resource = ConfigResource(ResourceType.TOPIC, SCRATCH, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op) for name, value, op in entries])
        return {"answer": settle(admin.incremental_alter_configs([resource], validate_only=validate_only, **kw())),
                "after": topic_configs(admin, SCRATCH, watched)}

    def broker_incremental(*entries, validate_only=False):
        resource = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op) for name, value, op in entries])
        answer = settle(admin.incremental_alter_configs([resource], validate_only=validate_only, **kw()))
        names = [name for name, _, _ in entries]
        probe = ConfigResource(ResourceType.BROKER, "0")
        found = settle(admin.describe_configs([probe], **kw()))[probe]
        return {"answer": answer,
                "after": {n: {"value": found[n].value, "source": plain(found[n])["source"]} if n in found else None
                          for n in names}}

    t.call("incremental_alter_configs", lambda: variants(
        # Expected after: retention.ms 7200000, cleanup.policy back to the default (delete).
        set_and_delete=lambda: incremental(("retention.ms", "7200000", AlterConfigOpType.SET),
                                           ("cleanup.policy", None, AlterConfigOpType.DELETE)),
        # Expected after: cleanup.policy delete,compact.
        append=lambda: incremental(("cleanup.policy", "compact", AlterConfigOpType.APPEND)),
        # Expected after: cleanup.policy compact.
        subtract=lambda: incremental(("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)),
        # Expected: success, retention.ms unchanged.
        validate_only=lambda: incremental(("retention.ms", "1000", AlterConfigOpType.SET), validate_only=True),
        invalid_value=expect_error("INVALID_CONFIG", lambda: incremental(
            ("retention.ms", "not-a-number", AlterConfigOpType.SET))),
        # A dynamic per-broker config, set then deleted; expected source
        # DYNAMIC_BROKER_CONFIG while set, DEFAULT_CONFIG after.
        broker_set=lambda: broker_incremental(("log.retention.ms", "172800000", AlterConfigOpType.SET)),
        broker_delete=lambda: broker_incremental(("log.retention.ms", None, AlterConfigOpType.DELETE)),
        # A static broker config: Kafka refuses it ("Cannot update these
        # configs dynamically"), validate_only or not.
        broker_static_validate_only=expect_error("INVALID_REQUEST", lambda: broker_incremental(
            ("num.partitions", "2", AlterConfigOpType.SET), validate_only=True)),
    ))


def group_calls(t, admin):
    def list_groups(**args):
        with warnings.catch_warnings():  # deprecated in favour of list/describe_consumer_groups
            warnings.simplefilter("ignore", DeprecationWarning)
            return admin.list_groups(timeout=REQUEST_SECS, **args)
    t.call("list_groups", lambda: variants(
        all=lambda: list_groups(),
        one=lambda: list_groups(group=GROUP),
    ))
    t.call("list_consumer_groups", lambda: variants(
        all=lambda: settle(admin.list_consumer_groups(**kw())),
        # Expected: ck-group only.
        states_empty=lambda: settle(admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}, **kw())),
        # Expected: ck-static only.
        states_stable=lambda: settle(admin.list_consumer_groups(states={ConsumerGroupState.STABLE}, **kw())),
        # Expected: both (classic protocol).
        types_classic=lambda: settle(admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}, **kw())),
        # Expected: none.
        types_consumer=lambda: settle(admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}, **kw())),
        states_and_types=lambda: settle(admin.list_consumer_groups(
            states={ConsumerGroupState.EMPTY, ConsumerGroupState.STABLE},
            types={ConsumerGroupType.CLASSIC}, **kw())),
    ))
    t.call("describe_consumer_groups", lambda: variants(
        plain=lambda: settle(admin.describe_consumer_groups([GROUP, STATIC_GROUP], **kw())),
        authorized_operations=lambda: settle(admin.describe_consumer_groups(
            [GROUP, STATIC_GROUP], include_authorized_operations=True, **kw())),
        # Expected: state DEAD, no error. librdkafka asks ConsumerGroupDescribe
        # first (GROUP_ID_NOT_FOUND), then DescribeGroups v5, which Kafka
        # answers for an unknown group with state Dead and no error.
        unknown_group=lambda: settle(admin.describe_consumer_groups(["ck-no-such-group"], **kw())),
    ))
    t.call("list_consumer_group_offsets", lambda: variants(
        all=lambda: settle(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)], **kw())),
        some_require_stable=lambda: settle(admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(GROUP, [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])],
            require_stable=True, **kw())),
        # Expected: an empty list of partitions (or offsets -1).
        unknown_group=lambda: settle(admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions("ck-no-such-group")], **kw())),
    ))

    def alter_consumer_group_offsets():
        answer = settle(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
            GROUP, [TopicPartition(TOPIC, 0, 4, "rewound by tour"), TopicPartition(TOPIC, 1, 7)])], **kw()))
        return {"answer": answer, "after": group_offsets(admin, GROUP)}
    t.call("alter_consumer_group_offsets", lambda: variants(
        empty_group=alter_consumer_group_offsets,
        # Expected: UNKNOWN_MEMBER_ID on the partition (Kafka refuses commits
        # from outside a non-empty group's generation).
        stable_group=lambda: settle(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
            STATIC_GROUP, [TopicPartition(TOPIC, 0, 1)])], **kw())),
    ))

    t.call("delete_consumer_groups", lambda: variants(
        empty_group=lambda: {
            "answer": settle(admin.delete_consumer_groups([GROUP], **kw())),
            "groups_after": group_listing(admin),
        },
        stable_group=expect_error("NON_EMPTY_GROUP", lambda: settle(
            admin.delete_consumer_groups([STATIC_GROUP], **kw()))),
        unknown_group=expect_error("GROUP_ID_NOT_FOUND", lambda: settle(
            admin.delete_consumer_groups(["ck-no-such-group"], **kw()))),
    ))


def security_calls(t, admin):
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    # No authorizer: Kafka answers SECURITY_DISABLED to all three. librdkafka
    # 2.16.0 drops DescribeAcls' top-level error, though, and yields [] (the
    # broker's answer carries error_code 54 on the wire), so describe_acls
    # is recorded as it comes.
    t.call("describe_acls", lambda: settle(admin.describe_acls(everything, **kw())))
    t.call("create_acls", expect_error("SECURITY_DISABLED", lambda: settle(admin.create_acls([AclBinding(
        ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, "User:" + USER, "*",
        AclOperation.READ, AclPermissionType.ALLOW)], **kw()))))
    t.call("delete_acls", expect_error("SECURITY_DISABLED", lambda: settle(admin.delete_acls([AclBindingFilter(
        ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, "User:" + USER, None,
        AclOperation.ANY, AclPermissionType.ANY)], **kw()))))

    def described(users=None):
        found = settle(admin.describe_user_scram_credentials(users, **kw()))
        return {user: [(i.mechanism.name, i.iterations) for i in d.scram_credential_infos]
                for user, d in found.items()}

    t.call("alter_user_scram_credentials", lambda: variants(
        upsert=lambda: {
            "answer": settle(admin.alter_user_scram_credentials([
                UserScramCredentialUpsertion(USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                             b"ck-secret"),
                UserScramCredentialUpsertion(USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                             b"ck-secret", b"ck-salt"),
            ], **kw())),
            "after": described([USER]),
        },
        delete_sha512=lambda: {
            "answer": settle(admin.alter_user_scram_credentials([
                UserScramCredentialDeletion(USER, ScramMechanism.SCRAM_SHA_512)], **kw())),
            "after": described([USER]),
        },
        delete_missing=expect_error("RESOURCE_NOT_FOUND", lambda: settle(admin.alter_user_scram_credentials([
            UserScramCredentialDeletion("ck-nobody", ScramMechanism.SCRAM_SHA_256)], **kw()))),
    ))
    t.call("describe_user_scram_credentials", lambda: variants(
        one=lambda: described([USER]),
        all=lambda: described(None),
        unknown_user=expect_error("RESOURCE_NOT_FOUND", lambda: described(["ck-nobody"])),
    ))


def local_calls(t, admin):
    t.call("poll", lambda: admin.poll(0.1))
    # No SASL configured: librdkafka refuses locally; nothing is sent.
    t.call("set_sasl_credentials", lambda: admin.set_sasl_credentials("ck-user", "ck-secret"))


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    bootstrap = sys.argv[1]
    faulthandler.dump_traceback_later(WATCHDOG_SECS, exit=True)
    conf = {"bootstrap.servers": bootstrap, "client.id": "ck-tour-admin", "socket.timeout.ms": 30000}
    if len(sys.argv) == 3:
        conf["debug"] = sys.argv[2]
    admin = AdminClient(conf)
    t = Tour()

    # The stage: topics through create_topics, then data.
    stage_topics(t, admin)
    setup = {}
    open_txn = None
    base_ms = int(time.time() * 1000) - 60000
    for name, fn in (("produced", lambda: produce(bootstrap, base_ms)),
                     ("consumed", lambda: consume_and_commit(bootstrap)),
                     ("static", lambda: join_static(bootstrap))):
        try:
            setup[name] = fn()
        except Exception as e:  # noqa: BLE001
            setup[name] = {"error": describe(e)}
    try:
        open_txn = transactions(bootstrap)
        setup["transactions"] = "committed one, left one open"
    except Exception as e:  # noqa: BLE001
        setup["transactions"] = {"error": describe(e)}
    t.results["_setup"] = setup

    cluster_calls(t, admin)
    topic_calls(t, admin, base_ms)
    config_calls(t, admin)
    group_calls(t, admin)
    security_calls(t, admin)

    def delete_topics():
        answer = settle(admin.delete_topics([SCRATCH], **kw(operation_timeout=REQUEST_SECS)))
        deadline = time.monotonic() + 10
        while SCRATCH in topic_names(admin) and time.monotonic() < deadline:
            time.sleep(0.5)
        return variants(
            scratch=lambda: {"answer": answer, "still_listed": SCRATCH in topic_names(admin)},
            missing=expect_error("UNKNOWN_TOPIC_OR_PART", lambda: settle(
                admin.delete_topics([MISSING_TOPIC], **kw()))),
        )
    t.call("delete_topics", delete_topics)
    local_calls(t, admin)

    if open_txn is not None:
        try:
            open_txn.abort_transaction(10)
            open_txn.close()
        except Exception as e:  # noqa: BLE001
            t.results["_setup"]["abort_open_transaction"] = describe(e)
    missing = [m for m in METHODS if m not in t.results]
    unlisted = sorted(m for m in dir(AdminClient) if not m.startswith("_") and m not in METHODS)
    if missing or unlisted:
        t.results["_missing"] = {"not_called": missing, "public_but_not_in_METHODS": unlisted}
    print(json.dumps(t.results, default=str))
    sys.stdout.flush()
    faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main()
