"""What the kafka-python admin tours share (kafka_python_admin_tour.py and
kafka_python_cluster_admin_tour.py import it from their own directory):
results made JSON-able, a runner keeping one outcome per call, and the
transactions both set up."""
import datetime
import enum
import json
import sys

from kafka import KafkaProducer, TopicPartition, TopicPartitionReplica
from kafka.admin import ACL, ACLFilter, MemberToRemove, UserScramCredentialUpsertion


def plain(value):
    """VALUE made JSON-able: TopicPartition keys as "topic:partition", named
    tuples as dicts, error classes and enums by name, sets as sorted lists,
    protocol responses through to_dict()."""
    if isinstance(value, TopicPartitionReplica):
        return "%s:%d@%d" % (value.topic, value.partition, value.broker_id)
    if isinstance(value, TopicPartition):
        return "%s:%d" % (value.topic, value.partition)
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Exception):
        return "%s: %s" % (type(value).__name__, value)
    if isinstance(value, dict):
        return {key if isinstance(key, str) else json.dumps(plain(key), default=str).strip('"'): plain(item)
                for key, item in value.items()}
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain(item) for item in value), key=str)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    if isinstance(value, (ACL, ACLFilter, MemberToRemove, UserScramCredentialUpsertion)):
        return repr(value)
    return value


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


class Tour:
    """Runs the calls and keeps one outcome per name; with STAMP, writes
    each call's name and start time (UTC) to stderr, to find its requests
    in the brokers' logs."""

    def __init__(self, stamp=False):
        self.results = {}
        self.stamp = stamp

    def call(self, name, fn):
        if self.stamp:
            print("%s %s" % (utc_now(), name), file=sys.stderr, flush=True)
        try:
            self.results[name] = {"ok": True, "result": plain(fn())}
        except Exception as e:  # every failure is a finding
            self.results[name] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        return self.results[name]


def transactions(bootstrap, topic, committed_id, open_id):
    """On partition 0 of TOPIC, one committed transaction of 5 records
    (COMMITTED_ID) and one of 3 left open (OPEN_ID, a 10-minute timeout):
    returns the producer holding the open one (close it at the end)."""
    committed = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=committed_id, max_block_ms=30000)
    committed.init_transactions()
    committed.begin_transaction()
    for i in range(5):
        committed.send(topic, value=b"committed-%d" % i, partition=0)
    committed.commit_transaction()
    committed.close(timeout=30)

    open_ = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=open_id,
                          max_block_ms=30000, transaction_timeout_ms=600000)
    open_.init_transactions()
    open_.begin_transaction()
    for i in range(3):
        open_.send(topic, value=b"open-%d" % i, partition=0)
    open_.flush(timeout=60)
    return open_

