//! The transaction coordinator: FindCoordinator for transactional ids,
//! InitProducerId with fencing, AddPartitionsToTxn, AddOffsetsToTxn,
//! EndTxn with markers, timeouts, state across restarts,
//! DescribeTransactions and ListTransactions; driven by the raw protocol
//! client and by librdkafka's transactional producer.
//!
//! read_committed filtering belongs to the partition side; these tests
//! look at what the coordinator shows and at the markers' offsets.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::raw::{self, str_bytes, topic_name, RawClient};
use common::*;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ListTransactionsRequest, ProducerId,
    TransactionalId,
};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use sluice::metadata::java_hash_partition;
use sluice::record::build::{build_batch, build_simple_batch, with_producer};
use sluice::txn::{records, TxnMetadata, TxnState};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INVALID_REQUEST: i16 = 42;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const TRANSACTION_ABORTABLE: i16 = 120;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// Upper bound on every wait for the coordinator to get somewhere.
const WAIT: Duration = Duration::from_secs(30);

/// Two shards so ids and partitions land on both; a small
/// `__transaction_state` and a quick timeout scan keep the tests short.
fn start_broker() -> Broker {
    Broker::start_with(2, BROKER_ARGS)
}

/// Partitions of `__transaction_state` in these tests.
const TXN_STATE_PARTITIONS: i32 = 4;

const BROKER_ARGS: &[&str] = &[
    "--transaction-state-num-partitions",
    "4",
    "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
    "200",
    "--metrics-listen",
    "127.0.0.1:0",
];

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(str_bytes(s))
}

/// A producer as the coordinator answered InitProducerId.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pid {
    id: i64,
    epoch: i16,
}

fn init_once(c: &mut RawClient, id: &str, timeout_ms: i32) -> Result<Pid, i16> {
    let r = c.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id(id)))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    match r.error_code {
        NONE => Ok(Pid {
            id: r.producer_id.0,
            epoch: r.producer_epoch,
        }),
        code => Err(code),
    }
}

/// InitProducerId, retried (bounded) while the coordinator answers with a
/// retriable code, as clients do.
fn init(c: &mut RawClient, id: &str, timeout_ms: i32) -> Pid {
    let deadline = Instant::now() + WAIT;
    loop {
        match init_once(c, id, timeout_ms) {
            Ok(pid) => return pid,
            Err(CONCURRENT_TRANSACTIONS | COORDINATOR_NOT_AVAILABLE)
                if Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(50))
            }
            Err(code) => panic!("InitProducerId {id}: error {code}"),
        }
    }
}

fn add_request(id: &str, pid: Pid, topic: &str, partitions: &[i32]) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid.id))
        .with_v3_and_below_producer_epoch(pid.epoch)
        .with_v3_and_below_topics(vec![topic_partitions(topic, partitions)])
}

fn topic_partitions(topic: &str, partitions: &[i32]) -> AddPartitionsToTxnTopic {
    AddPartitionsToTxnTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(partitions.to_vec())
}

/// AddPartitionsToTxn v3: each partition's code, in request order.
fn add(c: &mut RawClient, id: &str, pid: Pid, topic: &str, partitions: &[i32]) -> Vec<i16> {
    let r = c.call(3, &add_request(id, pid, topic, partitions));
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

fn end(c: &mut RawClient, version: i16, id: &str, pid: Pid, commit: bool) -> i16 {
    c.call(
        version,
        &EndTxnRequest::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid.id))
            .with_producer_epoch(pid.epoch)
            .with_committed(commit),
    )
    .error_code
}

/// DescribeTransactions for one id, retried (bounded) while the
/// coordinator loads.
fn describe(c: &mut RawClient, id: &str) -> TransactionState {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.call(
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]),
        );
        assert_eq!(r.transaction_states.len(), 1);
        let state = r.transaction_states.into_iter().next().unwrap();
        if state.error_code != COORDINATOR_LOAD_IN_PROGRESS || Instant::now() >= deadline {
            return state;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Describes `id` until its state is `state` (bounded by [`WAIT`]).
fn wait_for_state(c: &mut RawClient, id: &str, state: &str) -> TransactionState {
    let deadline = Instant::now() + WAIT;
    loop {
        let d = describe(c, id);
        if d.transaction_state.as_str() == state {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {state}: last {d:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// (transactional id, producer id, state) rows of a ListTransactions.
fn list(
    c: &mut RawClient,
    version: i16,
    states: &[&str],
    producer_ids: &[i64],
    duration_ms: i64,
) -> (Vec<(String, i64, String)>, Vec<String>) {
    let r = c.call(
        version,
        &ListTransactionsRequest::default()
            .with_state_filters(states.iter().map(|s| str_bytes(s)).collect())
            .with_producer_id_filters(producer_ids.iter().map(|p| ProducerId(*p)).collect())
            .with_duration_filter(duration_ms),
    );
    assert_eq!(r.error_code, NONE);
    let mut rows: Vec<_> = r
        .transaction_states
        .into_iter()
        .map(|s| {
            (
                s.transactional_id.to_string(),
                s.producer_id.0,
                s.transaction_state.to_string(),
            )
        })
        .collect();
    rows.sort();
    let unknown = r
        .unknown_state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    (rows, unknown)
}

fn log_end(bs: &str, topic: &str, partition: i32) -> i64 {
    watermarks(bs, topic, partition).1
}

/// FindCoordinator key type 1 names this broker and refuses an empty id.
#[test]
fn find_coordinator_answers_for_transactional_ids() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    let port: i32 = bs.rsplit(':').next().unwrap().parse().unwrap();
    let mut c = RawClient::connect(&bs);
    let find = |key: &str| {
        FindCoordinatorRequest::default()
            .with_key(str_bytes(key))
            .with_key_type(1)
    };
    for version in 1..=3 {
        let r = c.call(version, &find("tx-a"));
        assert_eq!((r.error_code, r.port), (NONE, port), "v{version}");
        assert_eq!(c.call(version, &find("")).error_code, INVALID_REQUEST);
    }
    let r = c.call(
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![str_bytes("tx-a"), str_bytes("")]),
    );
    let codes: Vec<(i16, i32)> = r
        .coordinators
        .iter()
        .map(|c| (c.error_code, c.port))
        .collect();
    assert_eq!(codes, vec![(NONE, port), (INVALID_REQUEST, -1)]);

    // The coordinator's log is an internal topic, as Kafka marks it.
    let named = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(common::raw::topic_name("__transaction_state"))),
    ]));
    let metadata = c.call(12, &named);
    assert_eq!(metadata.topics[0].error_code, NONE, "{metadata:?}");
    assert!(metadata.topics[0].is_internal, "{metadata:?}");
    let described = c.call(
        0,
        &common::raw::describe_topic_partitions_request(&["__transaction_state"], 1, None),
    );
    assert!(described.topics[0].is_internal, "{described:?}");
}

/// Raw commit and abort write one marker per partition; bad requests get Kafka's codes.
#[test]
fn raw_transactions_commit_abort_and_refuse_as_kafka() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-data", 3, &[]);
    let mut c = RawClient::connect(&bs);

    assert_eq!(
        init_once(&mut c, "tx-raw", 1_000_000),
        Err(INVALID_TRANSACTION_TIMEOUT)
    );
    assert_eq!(
        init_once(&mut c, "tx-raw", 0),
        Err(INVALID_TRANSACTION_TIMEOUT)
    );
    let pid = init(&mut c, "tx-raw", 60_000);
    assert_eq!(pid.epoch, 0);
    let empty = describe(&mut c, "tx-raw");
    assert_eq!(empty.transaction_state.as_str(), "Empty");
    assert_eq!((empty.producer_id.0, empty.producer_epoch), (pid.id, 0));

    // Empty: nothing to end.
    assert_eq!(end(&mut c, 3, "tx-raw", pid, true), INVALID_TXN_STATE);
    // An unknown partition spoils the whole request, as in Kafka.
    assert_eq!(
        add(&mut c, "tx-raw", pid, "tx-data", &[0, 7]),
        vec![OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        describe(&mut c, "tx-raw").transaction_state.as_str(),
        "Empty"
    );
    // Wrong producer id, old epoch (fenced; INVALID_PRODUCER_EPOCH before v2).
    let stranger = Pid {
        id: pid.id + 1000,
        epoch: 0,
    };
    assert_eq!(
        add(&mut c, "tx-raw", stranger, "tx-data", &[0]),
        vec![INVALID_PRODUCER_ID_MAPPING]
    );
    let future = Pid {
        id: pid.id,
        epoch: 5,
    };
    assert_eq!(
        add(&mut c, "tx-raw", future, "tx-data", &[0]),
        vec![PRODUCER_FENCED]
    );
    let r = c.call(1, &add_request("tx-raw", future, "tx-data", &[0]));
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        INVALID_PRODUCER_EPOCH
    );

    let before: Vec<i64> = (0..3).map(|p| log_end(&bs, "tx-data", p)).collect();
    assert_eq!(
        add(&mut c, "tx-raw", pid, "tx-data", &[0, 1]),
        vec![NONE, NONE]
    );
    assert_eq!(add(&mut c, "tx-raw", pid, "tx-data", &[1]), vec![NONE]);
    let ongoing = describe(&mut c, "tx-raw");
    assert_eq!(ongoing.transaction_state.as_str(), "Ongoing");
    assert!(ongoing.transaction_start_time_ms > 0);
    assert_eq!(ongoing.topics.len(), 1);
    assert_eq!(ongoing.topics[0].partitions, vec![0, 1]);
    assert_eq!(
        end(&mut c, 3, "tx-raw", stranger, true),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(end(&mut c, 3, "tx-raw", future, true), PRODUCER_FENCED);
    assert_eq!(
        end(&mut c, 1, "tx-raw", future, true),
        INVALID_PRODUCER_EPOCH
    );

    assert_eq!(end(&mut c, 3, "tx-raw", pid, true), NONE);
    let done = wait_for_state(&mut c, "tx-raw", "CompleteCommit");
    assert!(done.topics.is_empty());
    // The markers took one offset on each partition of the transaction.
    let after: Vec<i64> = (0..3).map(|p| log_end(&bs, "tx-data", p)).collect();
    assert_eq!(after, vec![before[0] + 1, before[1] + 1, before[2]]);
    assert_eq!(broker.metric("sluice_transactions_committed_total"), 1);
    // A retried commit succeeds; the opposite result is refused.
    assert_eq!(end(&mut c, 3, "tx-raw", pid, true), NONE);
    assert_eq!(end(&mut c, 3, "tx-raw", pid, false), INVALID_TXN_STATE);

    // The next transaction, aborted, on partition 2 and a group's offsets.
    assert_eq!(add(&mut c, "tx-raw", pid, "tx-data", &[2]), vec![NONE]);
    let offsets = c.call(
        2,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn_id("tx-raw"))
            .with_producer_id(ProducerId(pid.id))
            .with_producer_epoch(pid.epoch)
            .with_group_id(kafka_protocol::messages::GroupId(str_bytes("tx-group"))),
    );
    assert_eq!(offsets.error_code, NONE);
    let ongoing = describe(&mut c, "tx-raw");
    let topics: Vec<&str> = ongoing.topics.iter().map(|t| t.topic.as_str()).collect();
    assert!(topics.contains(&"__consumer_offsets"), "{topics:?}");
    assert!(topics.contains(&"tx-data"));
    assert_eq!(end(&mut c, 3, "tx-raw", pid, false), NONE);
    wait_for_state(&mut c, "tx-raw", "CompleteAbort");
    assert_eq!(log_end(&bs, "tx-data", 2), before[2] + 1);
    assert_eq!(end(&mut c, 3, "tx-raw", pid, false), NONE);
    assert_eq!(end(&mut c, 3, "tx-raw", pid, true), INVALID_TXN_STATE);

    // Empty ids are refused everywhere; unknown ones are not found.
    assert_eq!(init_once(&mut c, "", 1000), Err(INVALID_REQUEST));
    assert_eq!(end(&mut c, 3, "", pid, true), INVALID_REQUEST);
    assert_eq!(
        describe(&mut c, "tx-nobody").error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
}

/// AddPartitionsToTxn v4 serves batches, and verify_only checks without
/// adding; v5 (a broker that knows TRANSACTION_ABORTABLE) is answered alike.
#[test]
fn add_partitions_v4_batches_and_verifies() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-v4", 2, &[]);
    let mut c = RawClient::connect(&bs);
    let a = init(&mut c, "tx-v4-a", 60_000);
    let b = init(&mut c, "tx-v4-b", 60_000);
    let txn = |id: &str, pid: Pid, verify_only: bool, partitions: &[i32]| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid.id))
            .with_producer_epoch(pid.epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![topic_partitions("tx-v4", partitions)])
    };
    let codes = |r: kafka_protocol::messages::AddPartitionsToTxnResponse| -> Vec<Vec<i16>> {
        r.results_by_transaction
            .iter()
            .map(|t| {
                t.topic_results
                    .iter()
                    .flat_map(|x| {
                        x.results_by_partition
                            .iter()
                            .map(|p| p.partition_error_code)
                    })
                    .collect()
            })
            .collect()
    };
    let r = c.call(
        4,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![
            txn("tx-v4-a", a, false, &[0]),
            txn("tx-v4-b", b, false, &[0, 1]),
        ]),
    );
    assert_eq!(codes(r), vec![vec![NONE], vec![NONE, NONE]]);
    for version in [4, 5] {
        let r = c.call(
            version,
            &AddPartitionsToTxnRequest::default().with_transactions(vec![txn(
                "tx-v4-a",
                a,
                true,
                &[0, 1],
            )]),
        );
        assert_eq!(
            codes(r),
            vec![vec![NONE, TRANSACTION_ABORTABLE]],
            "v{version}"
        );
    }
    let still = describe(&mut c, "tx-v4-a");
    assert_eq!(
        still.topics[0].partitions,
        vec![0],
        "verify_only added nothing"
    );
}

/// KIP-890: a transactional batch that would open a transaction in a
/// partition is appended only once the coordinator confirms the partition
/// is in the producer's open transaction. A batch for a partition never
/// added, or one arriving after its transaction ended (a client's abort
/// keeps the epoch), would otherwise open a transaction no coordinator
/// ends: a hanging transaction, holding back read_committed readers for
/// good. Nothing of a refused batch reaches the log.
#[test]
fn stray_transactional_batches_cannot_open_hanging_transactions() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-stray", 2, &[]);
    let mut c = RawClient::connect(&bs);
    let (id, epoch) = raw::open_transaction(&mut c, "tx-stray", "tx-stray", &[0]);
    let pid = Pid { id, epoch };
    let batch = |seq| with_producer(&build_simple_batch(0, 1, now_ms()), id, epoch, seq, true);
    let produce = |c: &mut RawClient, version, partition, seq| {
        raw::produce_transactional(c, version, "tx-stray", "tx-stray", partition, batch(seq)).0
    };
    assert_eq!(produce(&mut c, 9, 0, 0), NONE);
    // Partition 1 was never added: Kafka's codes, by what the producer knows.
    assert_eq!(produce(&mut c, 9, 1, 1), INVALID_TXN_STATE);
    assert_eq!(produce(&mut c, 11, 1, 1), TRANSACTION_ABORTABLE);
    // Transactional batches without a transactional id: nothing could
    // verify them.
    assert_eq!(
        c.produce_batch("tx-stray", 1, batch(1)).0,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(c.log_end_offset("tx-stray", 1), 0);

    // The transaction ends; a late batch of it comes after the marker.
    assert_eq!(end(&mut c, 3, "tx-stray", pid, false), NONE);
    wait_for_state(&mut c, "tx-stray", "CompleteAbort");
    assert_eq!(
        c.log_end_offset("tx-stray", 0),
        2,
        "the batch and the marker"
    );
    assert_eq!(produce(&mut c, 9, 0, 1), INVALID_TXN_STATE);
    assert_eq!(c.log_end_offset("tx-stray", 0), 2);
    for partition in [0, 1] {
        let committed =
            raw::list_offsets_request("tx-stray", partition, -1).with_isolation_level(1);
        let stable = c.call(7, &committed).topics[0].partitions[0].offset;
        assert_eq!(
            stable,
            c.log_end_offset("tx-stray", partition),
            "no open transaction holds partition {partition} back"
        );
    }
    assert!(broker.metric("sluice_transaction_unverified_batches_refused_total") >= 4);

    // The producer's next transaction adds the partition and writes again.
    assert_eq!(add(&mut c, "tx-stray", pid, "tx-stray", &[0]), vec![NONE]);
    assert_eq!(produce(&mut c, 9, 0, 1), NONE);
    assert_eq!(c.log_end_offset("tx-stray", 0), 3);
}

/// EndTxn v5, the answer's producer: (error, id, epoch).
fn end_v5(c: &mut RawClient, id: &str, pid: Pid, commit: bool) -> (i16, Pid) {
    let r = c.call(
        5,
        &EndTxnRequest::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid.id))
            .with_producer_epoch(pid.epoch)
            .with_committed(commit),
    );
    let next = Pid {
        id: r.producer_id.0,
        epoch: r.producer_epoch,
    };
    (r.error_code, next)
}

/// TxnOffsetCommit of one offset of `topic`/0 for `group`: its code.
fn txn_offset_commit(
    c: &mut RawClient,
    version: i16,
    id: &str,
    pid: Pid,
    group: &str,
    topic: &str,
) -> i16 {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let request = kafka_protocol::messages::TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(kafka_protocol::messages::GroupId(str_bytes(group)))
        .with_producer_id(ProducerId(pid.id))
        .with_producer_epoch(pid.epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    let r = c.call(version, &request);
    r.topics[0].partitions[0].error_code
}

/// Transaction version 2 (KIP-890's second part), as Kafka 4's clients
/// run it once ApiVersions finalizes `transaction.version` 2: no
/// AddPartitionsToTxn or AddOffsetsToTxn (Produce v12 and TxnOffsetCommit
/// v5 add the partitions), and every EndTxn v5 bumps the epoch, hands the
/// producer its next epoch, and writes the markers at it, which fences the
/// transaction's stragglers. Before it, TxnOffsetCommit needs its
/// partition added (verification).
#[test]
fn transaction_version_2_adds_partitions_implicitly_and_bumps_every_end() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-v2", 2, &[]);
    let mut c = RawClient::connect(&bs);
    let versions: kafka_protocol::messages::ApiVersionsResponse =
        c.call(4, &raw::api_versions_request());
    let finalized = versions
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .expect("transaction.version finalized");
    assert_eq!(finalized.max_version_level, 2);

    let pid = init(&mut c, "tx-v2", 60_000);
    let batch = |pid: Pid, seq| {
        with_producer(
            &build_simple_batch(0, 1, now_ms()),
            pid.id,
            pid.epoch,
            seq,
            true,
        )
    };
    let produce = |c: &mut RawClient, version, partition, batch| {
        raw::produce_transactional(c, version, "tx-v2", "tx-v2", partition, batch).0
    };
    // Before v12 a partition must have been added; from v12 it is added.
    assert_eq!(produce(&mut c, 11, 0, batch(pid, 0)), TRANSACTION_ABORTABLE);
    assert_eq!(produce(&mut c, 12, 0, batch(pid, 0)), NONE);
    assert_eq!(produce(&mut c, 12, 0, batch(pid, 1)), NONE);
    assert_eq!(
        txn_offset_commit(&mut c, 3, "tx-v2", pid, "tx-v2-group", "tx-v2"),
        INVALID_TXN_STATE,
        "the offsets partition was never added"
    );
    assert_eq!(
        txn_offset_commit(&mut c, 5, "tx-v2", pid, "tx-v2-group", "tx-v2"),
        NONE
    );
    let open = describe(&mut c, "tx-v2");
    assert_eq!(open.transaction_state.as_str(), "Ongoing");
    let topics: Vec<&str> = open.topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(topics.len(), 2, "{topics:?}");
    assert!(topics.contains(&"__consumer_offsets") && topics.contains(&"tx-v2"));

    let (code, next) = end_v5(&mut c, "tx-v2", pid, true);
    assert_eq!(code, NONE);
    assert_eq!((next.id, next.epoch), (pid.id, pid.epoch + 1));
    wait_for_state(&mut c, "tx-v2", "CompleteCommit");
    assert_eq!(
        c.log_end_offset("tx-v2", 0),
        3,
        "two batches and the marker"
    );
    // A retry with the epoch from before the bump gets the same answer.
    let (code, again) = end_v5(&mut c, "tx-v2", pid, true);
    assert_eq!((code, again.id, again.epoch), (NONE, next.id, next.epoch));
    // A straggler of the committed transaction is fenced by the marker's
    // epoch; the next transaction starts at the new epoch, sequence 0.
    assert_eq!(
        produce(&mut c, 12, 0, batch(pid, 2)),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(produce(&mut c, 12, 1, batch(next, 0)), NONE);
    let (code, after_abort) = end_v5(&mut c, "tx-v2", next, false);
    assert_eq!((code, after_abort.epoch), (NONE, next.epoch + 1));
    wait_for_state(&mut c, "tx-v2", "CompleteAbort");
    // An abort with nothing open still bumps: how a producer recovers from
    // an abortable error.
    let (code, bumped) = end_v5(&mut c, "tx-v2", after_abort, false);
    assert_eq!((code, bumped.epoch), (NONE, after_abort.epoch + 1));
    wait_for_state(&mut c, "tx-v2", "CompleteAbort");
    assert_eq!(
        end_v5(&mut c, "tx-v2", bumped, true).0,
        INVALID_TXN_STATE,
        "nothing open to commit"
    );
    assert_eq!(end_v5(&mut c, "tx-v2", pid, false).0, PRODUCER_FENCED);
    let committed = raw::list_offsets_request("tx-v2", 1, -1).with_isolation_level(1);
    let stable = c.call(7, &committed).topics[0].partitions[0].offset;
    assert_eq!(stable, c.log_end_offset("tx-v2", 1), "nothing left open");
}

/// A transaction whose producer went away is aborted and fenced after its
/// timeout: one epoch bump fences it, and under transaction version 2 (the
/// default) its abort bumps once more, as every end does there (Kafka's
/// coordinator does both at the cluster's level).
#[test]
fn open_transaction_is_aborted_after_its_timeout() {
    for (version, bumps) in [("2", 2), ("0", 1)] {
        aborted_after_its_timeout(version, bumps);
    }
}

fn aborted_after_its_timeout(transaction_version: &str, bumps: i16) {
    let mut args = BROKER_ARGS.to_vec();
    args.extend(["--transaction-version", transaction_version]);
    let broker = Broker::start_with(2, &args);
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-timeout", 2, &[]);
    let pid = {
        let mut gone = RawClient::connect(&bs);
        let pid = init(&mut gone, "tx-crashed", 1000);
        assert_eq!(
            add(&mut gone, "tx-crashed", pid, "tx-timeout", &[0, 1]),
            vec![NONE, NONE]
        );
        pid
        // The producer's connection closes here, its transaction open.
    };
    let before = log_end(&bs, "tx-timeout", 1);
    let mut c = RawClient::connect(&bs);
    let aborted = wait_for_state(&mut c, "tx-crashed", "CompleteAbort");
    assert_eq!(aborted.producer_id.0, pid.id);
    assert_eq!(
        aborted.producer_epoch,
        pid.epoch + bumps,
        "the old producer is fenced (transaction version {transaction_version})"
    );
    assert_eq!(
        log_end(&bs, "tx-timeout", 1),
        before + 1,
        "abort marker written"
    );
    assert_eq!(broker.metric("sluice_transactions_timed_out_total"), 1);
    assert_eq!(broker.metric("sluice_transactions_aborted_total"), 1);
    let (rows, _) = list(&mut c, 0, &["CompleteAbort"], &[], -1);
    assert_eq!(
        rows,
        vec![(
            "tx-crashed".to_string(),
            pid.id,
            "CompleteAbort".to_string()
        )]
    );
    // The old producer's late calls are fenced.
    assert_eq!(end(&mut c, 3, "tx-crashed", pid, true), PRODUCER_FENCED);
    assert_eq!(
        add(&mut c, "tx-crashed", pid, "tx-timeout", &[0]),
        vec![PRODUCER_FENCED]
    );
}

/// A librdkafka producer dropped mid-transaction is aborted by the coordinator's timeout.
#[test]
fn dropped_librdkafka_producer_is_aborted_after_its_timeout() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-dropped", 1, &[]);
    let mut config = transactional_config(&bs, "tx-dropped");
    config
        .set("transaction.timeout.ms", "1000")
        .set("message.timeout.ms", "1000")
        .set("socket.timeout.ms", "1000");
    let producer: BaseProducer = config.create().unwrap();
    producer.init_transactions(WAIT).expect("init_transactions");
    producer.begin_transaction().expect("begin");
    producer
        .send(BaseRecord::<[u8], [u8]>::to("tx-dropped").payload(&b"left open"[..]))
        .expect("enqueue");
    let mut c = RawClient::connect(&bs);
    // The send registers the partition with the coordinator.
    wait_for_state(&mut c, "tx-dropped", "Ongoing");
    drop(producer);
    let d = wait_for_state(&mut c, "tx-dropped", "CompleteAbort");
    // Fenced, and bumped again by the abort (transaction version 2).
    assert_eq!(d.producer_epoch, 2, "aborted by the coordinator's timeout");
    let (rows, _) = list(&mut c, 1, &["CompleteAbort"], &[d.producer_id.0], -1);
    assert_eq!(rows.len(), 1);
}

/// InitProducerId on an open transaction aborts it first, then bumps the epoch.
#[test]
fn init_producer_id_aborts_the_open_transaction_first() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-reinit", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let old = init(&mut c, "tx-reinit", 60_000);
    assert_eq!(add(&mut c, "tx-reinit", old, "tx-reinit", &[0]), vec![NONE]);
    let before = log_end(&bs, "tx-reinit", 0);
    assert_eq!(
        init_once(&mut c, "tx-reinit", 60_000),
        Err(CONCURRENT_TRANSACTIONS)
    );
    let new = init(&mut c, "tx-reinit", 60_000);
    assert_eq!(new.id, old.id);
    assert_eq!(
        new.epoch,
        old.epoch + 3,
        "one bump fences, the abort bumps (transaction version 2), the retry bumps again"
    );
    let d = describe(&mut c, "tx-reinit");
    assert_eq!(d.transaction_state.as_str(), "Empty");
    assert_eq!(log_end(&bs, "tx-reinit", 0), before + 1);
    assert_eq!(end(&mut c, 3, "tx-reinit", old, false), PRODUCER_FENCED);
}

/// InitProducerId v3+ bumps for the named current producer and fences others (KIP-360).
#[test]
fn init_producer_id_checks_the_named_producer() {
    let broker = start_broker();
    let mut c = RawClient::connect(&broker.bootstrap());
    let first = init(&mut c, "tx-kip360", 60_000);
    let named = |pid: Pid| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id("tx-kip360")))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(pid.id))
            .with_producer_epoch(pid.epoch)
    };
    let r = c.call(4, &named(first));
    assert_eq!(r.error_code, NONE);
    assert_eq!(
        (r.producer_id.0, r.producer_epoch),
        (first.id, first.epoch + 1)
    );
    let retry = c.call(4, &named(first));
    assert_eq!(
        (retry.error_code, retry.producer_epoch),
        (NONE, first.epoch + 1)
    );
    let stale = Pid {
        id: first.id,
        epoch: first.epoch + 7,
    };
    assert_eq!(c.call(4, &named(stale)).error_code, PRODUCER_FENCED);
    assert_eq!(c.call(3, &named(stale)).error_code, INVALID_PRODUCER_EPOCH);
    let half = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id("tx-kip360")))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(first.id))
        .with_producer_epoch(-1);
    assert_eq!(c.call(4, &half).error_code, INVALID_REQUEST);
    // v2 has no producer fields: a plain bump.
    let r = c.call(
        2,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id("tx-kip360")))
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!((r.error_code, r.producer_epoch), (NONE, first.epoch + 2));
}

/// Completed and open transactions survive a restart.
#[test]
fn transaction_state_survives_restart() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-restart", 2, &[]);
    let mut c = RawClient::connect(&bs);
    let done = init(&mut c, "tx-done", 60_000);
    assert_eq!(add(&mut c, "tx-done", done, "tx-restart", &[0]), vec![NONE]);
    assert_eq!(end(&mut c, 3, "tx-done", done, true), NONE);
    wait_for_state(&mut c, "tx-done", "CompleteCommit");
    let open = init(&mut c, "tx-open", 600_000);
    assert_eq!(add(&mut c, "tx-open", open, "tx-restart", &[1]), vec![NONE]);
    drop(c);

    broker.restart();
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    let d = describe(&mut c, "tx-done");
    assert_eq!(d.transaction_state.as_str(), "CompleteCommit");
    assert_eq!((d.producer_id.0, d.producer_epoch), (done.id, done.epoch));
    let d = describe(&mut c, "tx-open");
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!(d.transaction_timeout_ms, 600_000);
    assert_eq!(d.topics[0].partitions, vec![1]);
    // The committed producer carries on; the open one is aborted and fenced.
    assert_eq!(end(&mut c, 3, "tx-done", done, true), NONE);
    let before = log_end(&bs, "tx-restart", 1);
    let again = init(&mut c, "tx-open", 600_000);
    // Fenced, the abort's bump (transaction version 2), the retry's.
    assert_eq!((again.id, again.epoch), (open.id, open.epoch + 3));
    assert_eq!(log_end(&bs, "tx-restart", 1), before + 1);
    assert_eq!(
        describe(&mut c, "tx-open").transaction_state.as_str(),
        "Empty"
    );
}

/// A PrepareCommit left by the last run is finished (markers, CompleteCommit) on load.
#[test]
fn prepared_transaction_is_finished_on_load() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-load", 1, &[]);
    let mut c = RawClient::connect(&bs);
    // Any transactional request creates __transaction_state.
    init(&mut c, "tx-creates-the-topic", 60_000);
    // The record a coordinator writes before its markers, as if it then
    // crashed: PrepareCommit of tx-load-0 for a producer it made up.
    let mut prepared = TxnMetadata::new(777_000, 60_000, now_ms());
    prepared.producer_epoch = 0;
    prepared.state = TxnState::PrepareCommit;
    prepared.txn_start_ms = now_ms();
    prepared.partitions.insert(sluice::shard::TopicPartition {
        topic: "tx-load".into(),
        partition: 0,
    });
    let key = records::key("tx-prepared");
    let value = records::value(&prepared);
    let batch = build_batch(0, &[(Some(&key[..]), Some(&value[..]), now_ms(), &[])]);
    let partition = java_hash_partition("tx-prepared", TXN_STATE_PARTITIONS);
    let (code, _) = c.produce_batch("__transaction_state", partition, batch);
    assert_eq!(code, NONE);
    let before = log_end(&bs, "tx-load", 0);
    drop(c);

    broker.restart();
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    let d = wait_for_state(&mut c, "tx-prepared", "CompleteCommit");
    assert_eq!((d.producer_id.0, d.producer_epoch), (777_000, 0));
    assert_eq!(
        log_end(&bs, "tx-load", 0),
        before + 1,
        "commit marker written"
    );
}

/// ListTransactions filters by state, producer id and (v1) duration.
#[test]
fn list_transactions_filters() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-list", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let idle = init(&mut c, "tx-idle", 60_000);
    let open = init(&mut c, "tx-ongoing", 60_000);
    assert_eq!(add(&mut c, "tx-ongoing", open, "tx-list", &[0]), vec![NONE]);
    let row = |id: &str, pid: Pid, state: &str| (id.to_string(), pid.id, state.to_string());

    let (all, unknown) = list(&mut c, 0, &[], &[], -1);
    assert_eq!(
        all,
        vec![
            row("tx-idle", idle, "Empty"),
            row("tx-ongoing", open, "Ongoing")
        ]
    );
    assert!(unknown.is_empty());
    let (ongoing, _) = list(&mut c, 0, &["Ongoing"], &[], -1);
    assert_eq!(ongoing, vec![row("tx-ongoing", open, "Ongoing")]);
    let (by_pid, _) = list(&mut c, 0, &[], &[idle.id], -1);
    assert_eq!(by_pid, vec![row("tx-idle", idle, "Empty")]);
    let (none, unknown) = list(&mut c, 0, &["Sleeping"], &[], -1);
    assert!(none.is_empty());
    assert_eq!(unknown, vec!["Sleeping".to_string()]);
    // v1: the open transaction started moments ago, so an hour-long
    // duration filter leaves it out; the idle id has no start and stays.
    let (long_running, _) = list(&mut c, 1, &[], &[], 3_600_000);
    assert_eq!(long_running, vec![row("tx-idle", idle, "Empty")]);

    // v2 (KIP-1152): a pattern matched against the whole id; an empty one
    // filters nothing; one that is not a regex is refused.
    let by_pattern = |c: &mut RawClient, pattern: &str| {
        let request = ListTransactionsRequest::default()
            .with_transactional_id_pattern(Some(str_bytes(pattern)));
        let r = c.call(2, &request);
        let mut ids: Vec<String> = r
            .transaction_states
            .iter()
            .map(|s| s.transactional_id.to_string())
            .collect();
        ids.sort();
        (r.error_code, ids)
    };
    assert_eq!(
        by_pattern(&mut c, "tx-on.*"),
        (NONE, vec!["tx-ongoing".to_string()])
    );
    assert_eq!(
        by_pattern(&mut c, "tx-on"),
        (NONE, vec![]),
        "whole ids only"
    );
    assert_eq!(by_pattern(&mut c, "").1.len(), 2);
    const INVALID_REGULAR_EXPRESSION: i16 = 128;
    assert_eq!(by_pattern(&mut c, "tx-(").0, INVALID_REGULAR_EXPRESSION);
}

fn transactional_config(bs: &str, id: &str) -> ClientConfig {
    let mut config = producer_config(bs);
    config
        .set("transactional.id", id)
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", "60000");
    config
}

/// A second librdkafka producer with the same transactional.id fences the first.
#[test]
fn second_producer_fences_the_first() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-fence", 1, &[]);
    let first: BaseProducer = transactional_config(&bs, "tx-fenced").create().unwrap();
    first
        .init_transactions(WAIT)
        .expect("first init_transactions");
    let mut c = RawClient::connect(&bs);
    let epoch_one = describe(&mut c, "tx-fenced").producer_epoch;

    let second: BaseProducer = transactional_config(&bs, "tx-fenced").create().unwrap();
    second
        .init_transactions(WAIT)
        .expect("second init_transactions");
    assert_eq!(describe(&mut c, "tx-fenced").producer_epoch, epoch_one + 1);

    first.begin_transaction().expect("begin is local");
    let _ = first.send(BaseRecord::<[u8], [u8]>::to("tx-fence").payload(&b"zombie"[..]));
    let outcome = first.commit_transaction(WAIT);
    match outcome {
        Err(KafkaError::Transaction(e)) => assert!(e.is_fatal(), "fenced is fatal: {e}"),
        other => panic!("the fenced producer committed: {other:?}"),
    }
    // The fenced producer added nothing to the new producer's state.
    let d = describe(&mut c, "tx-fenced");
    assert_eq!(d.producer_epoch, epoch_one + 1);
    assert_eq!(d.transaction_state.as_str(), "Empty");
}

/// librdkafka's abort_transaction completes and leaves an abort marker.
#[test]
fn librdkafka_aborts_a_transaction() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-rd-abort", 1, &[]);
    let producer: BaseProducer = transactional_config(&bs, "tx-rd-abort").create().unwrap();
    producer.init_transactions(WAIT).expect("init_transactions");
    let before = log_end(&bs, "tx-rd-abort", 0);
    producer.begin_transaction().expect("begin");
    producer
        .send(BaseRecord::<[u8], [u8]>::to("tx-rd-abort").payload(&b"dropped"[..]))
        .expect("enqueue");
    // The records' fate does not matter here, only that they were sent.
    let _ = producer.flush(WAIT);
    producer.abort_transaction(WAIT).expect("abort_transaction");
    let mut c = RawClient::connect(&bs);
    let d = wait_for_state(&mut c, "tx-rd-abort", "CompleteAbort");
    assert_eq!(d.producer_epoch, 0);
    assert!(
        log_end(&bs, "tx-rd-abort", 0) > before,
        "abort marker written"
    );
}

/// librdkafka commits and aborts transactions with records; each marker takes one offset.
#[test]
fn librdkafka_commits_and_aborts() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "tx-rd", 1, &[]);
    let producer: BaseProducer = transactional_config(&bs, "tx-rd").create().unwrap();
    producer.init_transactions(WAIT).expect("init_transactions");
    let mut c = RawClient::connect(&bs);
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        producer.begin_transaction().expect("begin");
        for i in 0..3 {
            let value = format!("r{round}-{i}");
            producer
                .send(BaseRecord::<[u8], [u8]>::to("tx-rd").payload(value.as_bytes()))
                .expect("enqueue");
        }
        if commit {
            producer.commit_transaction(WAIT).expect("commit");
        } else {
            producer.flush(WAIT).expect("flush");
            producer.abort_transaction(WAIT).expect("abort");
        }
        let state = if commit {
            "CompleteCommit"
        } else {
            "CompleteAbort"
        };
        wait_for_state(&mut c, "tx-rd", state);
    }
    // 9 records and 3 markers.
    assert_eq!(log_end(&bs, "tx-rd", 0), 12);
    // librdkafka consumers default to read_committed: the aborted round
    // is skipped.
    let got = consume_all(&bs, "tx-rd", 1, 6, WAIT);
    let values: Vec<String> = got.iter().map(payload_str).collect();
    assert_eq!(values, ["r0-0", "r0-1", "r0-2", "r2-0", "r2-1", "r2-2"]);
}
