//! The bridge byte for byte against kafka-protocol's encoders: Kafka 3.x's
//! (0.15.1) for the client's side, 0.18's for the handlers' side.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as new;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol_v3::messages as old;

use super::fixups::{answer, forward_request, Answer};
use super::*;

fn old_bytes<T: v3::protocol::Encodable>(value: &T, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    value.encode(&mut b, version).unwrap();
    b.freeze()
}

fn new_bytes<T: kafka_protocol::protocol::Encodable>(value: &T, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    value.encode(&mut b, version).unwrap();
    b.freeze()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn s3(v: &str) -> v3::protocol::StrBytes {
    v3::protocol::StrBytes::from_string(v.into())
}

/// Forwards `request` (client bytes at `version`) and checks that 0.18
/// decodes the forwarded bytes whole and encodes them back identically.
fn forward<N: kafka_protocol::protocol::Decodable + kafka_protocol::protocol::Encodable>(
    key: ApiKey,
    version: i16,
    client_bytes: Bytes,
) -> (N, fixups::Forward) {
    let to = forwarded_version(key, version).expect("bridged");
    let mut buf = client_bytes;
    let limits = records::Limits {
        decompressed_max: 1 << 20,
        down_conversion_max: 1 << 20,
    };
    let fwd = forward_request(key, (version, to), &mut buf, limits).unwrap();
    assert!(buf.is_empty(), "{key:?} v{version}: request left over");
    let mut body = fwd.body.clone();
    let decoded = N::decode(&mut body, to).unwrap();
    assert!(body.is_empty(), "{key:?} v{version}: 0.18 left bytes over");
    assert_eq!(new_bytes(&decoded, to), fwd.body, "{key:?} v{version}");
    (decoded, fwd)
}

/// The client's answer to the handler's `response` at the forwarded version.
fn answered<N: kafka_protocol::protocol::Encodable>(
    key: ApiKey,
    version: i16,
    response: &N,
    how: Answer,
) -> Bytes {
    let to = forwarded_version(key, version).unwrap();
    let mut buf = new_bytes(response, to);
    let out = answer(key, to, version, &mut buf, how).unwrap();
    assert!(buf.is_empty());
    out
}

/// OffsetCommit v0 (no generation, member or times) and v1 (per-partition
/// commit times, carried to the coordinator) as v2.
#[test]
fn offset_commit_v0_v1() {
    for version in [0, 1] {
        let mut p = old::offset_commit_request::OffsetCommitRequestPartition::default();
        p.partition_index = 3;
        p.committed_offset = 42;
        p.committed_metadata = Some(s3("m"));
        if version == 1 {
            p.commit_timestamp = 1_700_000_000_000;
        }
        let mut t = old::offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = s3("t").into();
        t.partitions = vec![p.clone(), {
            let mut q = p.clone();
            q.partition_index = 4;
            q.commit_timestamp = -1;
            q
        }];
        let mut r = old::OffsetCommitRequest::default();
        r.group_id = s3("g").into();
        if version == 1 {
            r.generation_id_or_member_epoch = 7;
            r.member_id = s3("member-1");
        }
        r.topics = vec![t];
        let (got, fwd) = forward::<new::OffsetCommitRequest>(
            ApiKey::OffsetCommit,
            version,
            old_bytes(&r, version),
        );
        assert_eq!(got.group_id.as_str(), "g");
        let generation = if version == 1 { 7 } else { -1 };
        assert_eq!(got.generation_id_or_member_epoch, generation);
        assert_eq!(got.retention_time_ms, -1, "v0-1 have no retention");
        let parts = &got.topics[0].partitions;
        assert_eq!(
            (parts[0].partition_index, parts[0].committed_offset),
            (3, 42)
        );
        assert_eq!(parts[0].committed_metadata.as_deref(), Some("m"));
        let times = if version == 1 {
            vec![1_700_000_000_000, -1]
        } else {
            vec![-1, -1]
        };
        assert_eq!(fwd.carried.commit_timestamps, times);

        let mut rp = new::offset_commit_response::OffsetCommitResponsePartition::default();
        rp.partition_index = 3;
        rp.error_code = 25; // UNKNOWN_MEMBER_ID
        let mut rt = new::offset_commit_response::OffsetCommitResponseTopic::default();
        rt.name = s("t").into();
        rt.partitions = vec![rp];
        let mut resp = new::OffsetCommitResponse::default();
        resp.topics = vec![rt];
        let mut want_p = old::offset_commit_response::OffsetCommitResponsePartition::default();
        want_p.partition_index = 3;
        want_p.error_code = 25;
        let mut want_t = old::offset_commit_response::OffsetCommitResponseTopic::default();
        want_t.name = s3("t").into();
        want_t.partitions = vec![want_p];
        let mut want = old::OffsetCommitResponse::default();
        want.topics = vec![want_t];
        assert_eq!(
            answered(ApiKey::OffsetCommit, version, &resp, Answer::Plain),
            old_bytes(&want, version)
        );
    }
}

/// DescribeConfigs v0 says `is_default` where v1 gives the config source.
#[test]
fn describe_configs_v0_is_default() {
    let mut res = old::describe_configs_request::DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = s3("t");
    let mut r = old::DescribeConfigsRequest::default();
    r.resources = vec![res];
    let (got, _) =
        forward::<new::DescribeConfigsRequest>(ApiKey::DescribeConfigs, 0, old_bytes(&r, 0));
    assert_eq!(got.resources[0].resource_name.as_str(), "t");
    assert!(!got.include_synonyms);

    let config = |name: &str, source: i8| {
        let mut c = new::describe_configs_response::DescribeConfigsResourceResult::default();
        c.name = s(name);
        c.value = Some(s("1"));
        c.config_source = source;
        c
    };
    let mut result = new::describe_configs_response::DescribeConfigsResult::default();
    result.resource_type = 2;
    result.resource_name = s("t");
    result.configs = vec![config("a", 5), config("b", 1)];
    let mut resp = new::DescribeConfigsResponse::default();
    resp.results = vec![result];
    let out = answered(ApiKey::DescribeConfigs, 0, &resp, Answer::Plain);

    let want_config = |name: &str, is_default: bool| {
        let mut c = old::describe_configs_response::DescribeConfigsResourceResult::default();
        c.name = s3(name);
        c.value = Some(s3("1"));
        c.is_default = is_default;
        c
    };
    let mut wr = old::describe_configs_response::DescribeConfigsResult::default();
    wr.resource_type = 2;
    wr.resource_name = s3("t");
    wr.configs = vec![want_config("a", true), want_config("b", false)];
    let mut want = old::DescribeConfigsResponse::default();
    want.results = vec![wr];
    assert_eq!(out, old_bytes(&want, 0));
}

/// CreateTopics v0-1: v0's answer has no error message.
#[test]
fn create_topics_v0_v1() {
    for version in [0, 1] {
        let mut topic = old::create_topics_request::CreatableTopic::default();
        topic.name = s3("t").into();
        topic.num_partitions = 3;
        topic.replication_factor = 1;
        let mut r = old::CreateTopicsRequest::default();
        r.topics = vec![topic];
        r.timeout_ms = 5_000;
        r.validate_only = version == 1;
        let (got, _) = forward::<new::CreateTopicsRequest>(
            ApiKey::CreateTopics,
            version,
            old_bytes(&r, version),
        );
        assert_eq!(got.topics[0].name.as_str(), "t");
        assert_eq!(got.topics[0].num_partitions, 3);
        assert_eq!(got.validate_only, version == 1);

        let mut rt = new::create_topics_response::CreatableTopicResult::default();
        rt.name = s("t").into();
        rt.error_code = 36; // TOPIC_ALREADY_EXISTS
        rt.error_message = Some(s("exists"));
        let mut resp = new::CreateTopicsResponse::default();
        resp.topics = vec![rt];
        let mut wt = old::create_topics_response::CreatableTopicResult::default();
        wt.name = s3("t").into();
        wt.error_code = 36;
        wt.error_message = (version == 1).then(|| s3("exists"));
        let mut want = old::CreateTopicsResponse::default();
        want.topics = vec![wt];
        assert_eq!(
            answered(ApiKey::CreateTopics, version, &resp, Answer::Plain),
            old_bytes(&want, version)
        );
    }
}

/// The APIs whose old versions carry the same fields as the forwarded one:
/// the client's bytes survive the trip through the forwarded version.
#[test]
fn same_field_versions_are_lossless() {
    let mut fetch = old::OffsetFetchRequest::default();
    fetch.group_id = s3("g").into();
    let mut ft = old::offset_fetch_request::OffsetFetchRequestTopic::default();
    ft.name = s3("t").into();
    ft.partition_indexes = vec![0, 1];
    fetch.topics = Some(vec![ft]);
    let (got, _) = forward::<new::OffsetFetchRequest>(ApiKey::OffsetFetch, 0, old_bytes(&fetch, 0));
    assert_eq!(got.group_id.as_str(), "g");
    assert_eq!(got.topics.unwrap()[0].partition_indexes, [0, 1]);

    let mut del = old::DeleteTopicsRequest::default();
    del.topic_names = vec![s3("t").into()];
    del.timeout_ms = 1_000;
    let (got, _) = forward::<new::DeleteTopicsRequest>(ApiKey::DeleteTopics, 0, old_bytes(&del, 0));
    assert_eq!(got.topic_names[0].as_str(), "t");

    for version in [0, 1] {
        let mut p = old::offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
        p.partition = 2;
        p.leader_epoch = 5;
        let mut t = old::offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        t.topic = s3("t").into();
        t.partitions = vec![p];
        let mut r = old::OffsetForLeaderEpochRequest::default();
        r.topics = vec![t];
        let (got, _) = forward::<new::OffsetForLeaderEpochRequest>(
            ApiKey::OffsetForLeaderEpoch,
            version,
            old_bytes(&r, version),
        );
        let gp = &got.topics[0].partitions[0];
        assert_eq!(
            (gp.partition, gp.leader_epoch, gp.current_leader_epoch),
            (2, 5, -1)
        );

        let mut e = new::offset_for_leader_epoch_response::EpochEndOffset::default();
        e.partition = 2;
        e.leader_epoch = 5;
        e.end_offset = 99;
        let mut rt = new::offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default();
        rt.topic = s("t").into();
        rt.partitions = vec![e];
        let mut resp = new::OffsetForLeaderEpochResponse::default();
        resp.topics = vec![rt];
        let out = answered(ApiKey::OffsetForLeaderEpoch, version, &resp, Answer::Plain);
        let mut buf = out.clone();
        let back = old::OffsetForLeaderEpochResponse::decode(&mut buf, version).unwrap();
        let bp = &back.topics[0].partitions[0];
        assert_eq!(bp.end_offset, 99);
        assert_eq!(bp.leader_epoch, if version == 1 { 5 } else { -1 });
    }

    let mut m = old::write_txn_markers_request::WritableTxnMarker::default();
    m.producer_id = 9.into();
    m.producer_epoch = 1;
    m.transaction_result = true;
    let mut mt = old::write_txn_markers_request::WritableTxnMarkerTopic::default();
    mt.name = s3("t").into();
    mt.partition_indexes = vec![0];
    m.topics = vec![mt];
    let mut w = old::WriteTxnMarkersRequest::default();
    w.markers = vec![m];
    let (got, _) =
        forward::<new::WriteTxnMarkersRequest>(ApiKey::WriteTxnMarkers, 0, old_bytes(&w, 0));
    assert_eq!(*got.markers[0].producer_id, 9);
}

/// Only the dropped versions of the bridged APIs are bridged.
#[test]
fn bridged_versions() {
    assert_eq!(forwarded_version(ApiKey::OffsetCommit, 1), Some(2));
    assert_eq!(forwarded_version(ApiKey::OffsetCommit, 2), None);
    assert_eq!(forwarded_version(ApiKey::ListOffsets, 0), Some(1));
    assert_eq!(
        forwarded_version(ApiKey::Metadata, 0),
        None,
        "0.18 decodes it"
    );
    assert_eq!(forwarded_version(ApiKey::OffsetCommit, -1), None);
}

/// A magic 0 or 1 message set as a Produce v0-2 client writes it.
fn message_set(magic: i8, values: &[&str]) -> Bytes {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let m = crate::message_format::Message {
            offset: i as i64,
            magic,
            attributes: 0,
            timestamp: 1_000 + i as i64,
            key: Some(b"k"),
            value: Some(v.as_bytes()),
        };
        crate::message_format::write_message(&mut out, &m);
    }
    Bytes::from(out)
}

/// Produce v0-2: each message set arrives at the v3 handler as one v2
/// batch; a set that does not convert gets its own error code back.
#[test]
fn produce_v0_v2_message_sets() {
    for version in [0, 1, 2] {
        let magic = if version == 2 { 1 } else { 0 };
        let mut good = old::produce_request::PartitionProduceData::default();
        good.index = 0;
        good.records = Some(message_set(magic, &["a", "b"]));
        let mut bad = old::produce_request::PartitionProduceData::default();
        bad.index = 1;
        bad.records = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99]));
        let mut t = old::produce_request::TopicProduceData::default();
        t.name = s3("t").into();
        t.partition_data = vec![good, bad];
        let mut r = old::ProduceRequest::default();
        r.acks = 1;
        r.timeout_ms = 1_000;
        r.topic_data = vec![t];
        let (got, fwd) =
            forward::<new::ProduceRequest>(ApiKey::Produce, version, old_bytes(&r, version));
        let parts = &got.topic_data[0].partition_data;
        let batch = parts[0].records.clone().expect("converted");
        crate::record::validate_batches(&batch, 1 << 20).unwrap();
        assert_eq!(
            crate::record::BatchHeader::parse(&batch)
                .unwrap()
                .records_count,
            2
        );
        assert!(parts[1].records.is_none(), "refused before the handler");

        let answer_for = |index: i32, error: i16, base: i64| {
            let mut p = new::produce_response::PartitionProduceResponse::default();
            p.index = index;
            p.error_code = error;
            p.base_offset = base;
            p
        };
        let mut rt = new::produce_response::TopicProduceResponse::default();
        rt.name = s("t").into();
        rt.partition_responses = vec![answer_for(0, 0, 7), answer_for(1, 2, -1)];
        let mut resp = new::ProduceResponse::default();
        resp.responses = vec![rt];
        let mut out = answered(ApiKey::Produce, version, &resp, fwd.answer);
        let back = old::ProduceResponse::decode(&mut out, version).unwrap();
        let bp = &back.responses[0].partition_responses;
        assert_eq!((bp[0].error_code, bp[0].base_offset), (0, 7));
        assert_eq!(bp[1].error_code, 2, "CORRUPT_MESSAGE for a bad size");
    }
}

/// Fetch v0-3 goes out as v4 within the down-conversion bound; the v2
/// batches come back as messages of the client's format.
#[test]
fn fetch_v0_v3_down_converts() {
    for version in [0, 1, 2, 3] {
        let mut p = old::fetch_request::FetchPartition::default();
        p.partition = 0;
        p.fetch_offset = 5;
        p.partition_max_bytes = i32::MAX;
        let mut t = old::fetch_request::FetchTopic::default();
        t.topic = s3("t").into();
        t.partitions = vec![p];
        let mut r = old::FetchRequest::default();
        r.replica_id = (-1).into();
        r.max_wait_ms = 100;
        r.topics = vec![t];
        let (got, fwd) =
            forward::<new::FetchRequest>(ApiKey::Fetch, version, old_bytes(&r, version));
        assert_eq!(got.max_bytes, 1 << 20);
        assert_eq!(got.topics[0].partitions[0].partition_max_bytes, 1 << 20);
        assert_eq!(got.topics[0].partitions[0].fetch_offset, 5);

        let batch = crate::record::build::build_simple_batch(5, 3, 2_000);
        let mut fp = new::fetch_response::PartitionData::default();
        fp.partition_index = 0;
        fp.high_watermark = 8;
        fp.last_stable_offset = 8;
        fp.log_start_offset = 0;
        fp.aborted_transactions = Some(vec![]);
        fp.records = Some(batch);
        let mut ft = new::fetch_response::FetchableTopicResponse::default();
        ft.topic = s("t").into();
        ft.partitions = vec![fp];
        let mut resp = new::FetchResponse::default();
        resp.responses = vec![ft];
        let mut out = answered(ApiKey::Fetch, version, &resp, fwd.answer);
        let back = old::FetchResponse::decode(&mut out, version).unwrap();
        let bp = &back.responses[0].partitions[0];
        assert_eq!(bp.high_watermark, 8);
        let mut records = bp.records.clone().unwrap();
        let sets = v3::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
        let magic = if version < 2 { 0 } else { 1 };
        assert!(sets.iter().all(|s| s.version == magic));
        let got: Vec<(i64, i64)> = sets
            .iter()
            .flat_map(|s| &s.records)
            .map(|r| (r.offset, r.timestamp))
            .collect();
        let ts = |t: i64| if magic == 1 { t } else { -1 };
        assert_eq!(got, [(5, ts(2_000)), (6, ts(2_000)), (7, ts(2_000))]);
    }
}
