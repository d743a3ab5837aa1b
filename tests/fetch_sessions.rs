//! Incremental fetch sessions (KIP-227) as a Java consumer or a follower
//! uses them: a session is made by a full fetch, later fetches name only
//! what moved and get back only what changed, and a wrong epoch or an
//! unknown session gets Kafka's errors.

mod common;

use common::raw::{self, RawClient};
use common::*;
use kafka_protocol::messages::FetchResponse;

const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;

fn batch(value: &[u8]) -> bytes::Bytes {
    sluice::record::build::build_batch(0, &[(None, Some(value), now_ms(), &[])])
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The (partition, record count) pairs a response carries.
fn answered(response: &FetchResponse) -> Vec<(i32, usize)> {
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, raw::decode_records(&p.records).len()))
        })
        .collect()
}

#[test]
fn incremental_fetches_carry_only_what_changed() {
    let broker = Broker::start(1);
    create_topic(&broker.bootstrap(), "sessions", 3, &[]);
    let mut c = RawClient::connect(&broker.bootstrap());
    for p in 0..3 {
        assert_eq!(c.produce_batch("sessions", p, batch(b"first")).0, 0);
    }

    // A full fetch asking for a session (epoch 0) answers every partition.
    let full = raw::fetch_request("sessions", &[(0, 0), (1, 0), (2, 0)], 0)
        .with_session_id(0)
        .with_session_epoch(0);
    let response: FetchResponse = c.call(12, &full);
    assert_eq!(response.error_code, 0);
    let session = response.session_id;
    assert_ne!(session, 0, "a session was made");
    assert_eq!(answered(&response), vec![(0, 1), (1, 1), (2, 1)]);

    // The fetcher moves its positions past what it read; nothing new
    // arrived, so the answer names no partition.
    let moved = raw::fetch_request("sessions", &[(0, 1), (1, 1), (2, 1)], 0)
        .with_session_id(session)
        .with_session_epoch(1);
    let response: FetchResponse = c.call(12, &moved);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.session_id, session);
    assert_eq!(answered(&response), vec![]);

    // A record on partition 2 only: an empty request gets just that one.
    assert_eq!(c.produce_batch("sessions", 2, batch(b"second")).0, 0);
    let idle = raw::fetch_request("sessions", &[], 1000)
        .with_session_id(session)
        .with_session_epoch(2);
    let response: FetchResponse = c.call(12, &idle);
    assert_eq!(answered(&response), vec![(2, 1)]);

    // Kafka's session errors.
    let stale = idle.clone().with_session_epoch(2);
    let response: FetchResponse = c.call(12, &stale);
    assert_eq!(response.error_code, INVALID_FETCH_SESSION_EPOCH);
    let unknown = idle
        .clone()
        .with_session_id(session ^ 1)
        .with_session_epoch(3);
    let response: FetchResponse = c.call(12, &unknown);
    assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // The final epoch closes the session: a sessionless full fetch.
    let last = raw::fetch_request("sessions", &[(0, 0)], 0)
        .with_session_id(session)
        .with_session_epoch(-1);
    let response: FetchResponse = c.call(12, &last);
    assert_eq!(response.session_id, 0);
    assert_eq!(answered(&response), vec![(0, 1)]);
    let gone = idle.with_session_epoch(3);
    let response: FetchResponse = c.call(12, &gone);
    assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);
}

/// A session's partition that read as nothing new is not read again while
/// it stays unchanged (a follower's fetch names every partition it
/// follows, and one append moves one of them), and is read again, with
/// what is new, once it moves.
#[test]
fn an_unchanged_partition_is_not_read_again_until_it_moves() {
    const KEPT: &str = "sluice_fetch_partitions_kept_total";
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    create_topic(&broker.bootstrap(), "quiet", 8, &[]);
    let mut c = RawClient::connect(&broker.bootstrap());
    for p in 0..8 {
        assert_eq!(c.produce_batch("quiet", p, batch(b"first")).0, 0);
    }
    let at = |offset: i64| (0..8).map(|p| (p, offset)).collect::<Vec<_>>();

    // A new session at every partition's end: nothing to send anywhere.
    let full = raw::fetch_request("quiet", &at(1), 0)
        .with_session_id(0)
        .with_session_epoch(0);
    let response: FetchResponse = c.call(12, &full);
    let session = response.session_id;
    assert_ne!(session, 0, "a session was made");
    assert_eq!(
        answered(&response),
        (0..8).map(|p| (p, 0)).collect::<Vec<_>>()
    );
    let kept = broker.metric(KEPT);

    // Nothing moved: no partition is read again.
    let idle = |epoch: i32, wait_ms: i32| {
        raw::fetch_request("quiet", &[], wait_ms)
            .with_session_id(session)
            .with_session_epoch(epoch)
    };
    let response: FetchResponse = c.call(12, &idle(1, 0));
    assert_eq!(answered(&response), vec![]);
    assert_eq!(broker.metric(KEPT), kept + 8, "all eight kept");

    // One partition moves: it alone is read, and its record is answered.
    assert_eq!(c.produce_batch("quiet", 3, batch(b"second")).0, 0);
    let response: FetchResponse = c.call(12, &idle(2, 0));
    assert_eq!(answered(&response), vec![(3, 1)]);
    assert_eq!(broker.metric(KEPT), kept + 8 + 7);

    // A long poll parked on quiet partitions wakes for an append to one:
    // the append is made once the poll is parked, and the wake is counted
    // (a poll that ran out its wait instead would answer the same records
    // at its end, but count no wake).
    const PARKED: &str = "sluice_fetch_parked";
    const WOKEN: &str = "sluice_fetch_wakeup_seconds_count";
    let woken = broker.metric(WOKEN);
    let moved = raw::fetch_request("quiet", &[(3, 2)], 10_000)
        .with_session_id(session)
        .with_session_epoch(3);
    c.send(12, &moved);
    assert!(
        broker.wait_metric(PARKED, 1) >= 1,
        "the poll parked (on each owner)"
    );
    let mut producer = RawClient::connect(&broker.bootstrap());
    assert_eq!(producer.produce_batch("quiet", 5, batch(b"third")).0, 0);
    let response: FetchResponse = c.recv();
    assert_eq!(answered(&response), vec![(5, 1)]);
    assert!(broker.metric(WOKEN) > woken, "the append woke the poll");

    // Partition 5's position moves past its record; the partition that was
    // answered last is read again once, then kept like the rest.
    let caught_up = raw::fetch_request("quiet", &[(5, 2)], 0)
        .with_session_id(session)
        .with_session_epoch(4);
    let response: FetchResponse = c.call(12, &caught_up);
    assert_eq!(answered(&response), vec![]);
    let before = broker.metric(KEPT);
    let response: FetchResponse = c.call(12, &idle(5, 0));
    assert_eq!(answered(&response), vec![]);
    assert_eq!(broker.metric(KEPT), before + 8, "all eight kept again");
}
