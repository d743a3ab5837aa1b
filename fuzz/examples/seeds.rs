//! Writes the seed inputs of every fuzz target into `corpus/<target>/`:
//! valid requests of every served API and version, valid batches, streams
//! of every codec, and partition files a real log wrote. Run from `fuzz/`:
//! `cargo run --example seeds`, then minimize (see the Makefile's `fuzz`).

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice::compression::{compress, Codec};
use sluice::handlers::APIS;
use sluice::record::build::{build_batch, build_simple_batch};
use sluice::record::BATCH_HEADER_LEN;
use sluice::storage::{segment_path, LogConfig, PartitionLog};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    request_decode(&corpus.join("request_decode"));
    record_validate(&corpus.join("record_validate"));
    decompress(&corpus.join("decompress"));
    segment_recovery(&corpus.join("segment_recovery"));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// The default request of `key`, as the body kafka-protocol encodes.
fn default_request(key: ApiKey) -> RequestKind {
    use RequestKind as R;
    match key {
        ApiKey::Produce => R::Produce(Default::default()),
        ApiKey::Fetch => R::Fetch(Default::default()),
        ApiKey::ListOffsets => R::ListOffsets(Default::default()),
        ApiKey::Metadata => R::Metadata(Default::default()),
        ApiKey::ApiVersions => R::ApiVersions(Default::default()),
        ApiKey::CreateTopics => R::CreateTopics(Default::default()),
        ApiKey::DeleteTopics => R::DeleteTopics(Default::default()),
        ApiKey::DescribeConfigs => R::DescribeConfigs(Default::default()),
        ApiKey::AlterConfigs => R::AlterConfigs(Default::default()),
        ApiKey::CreatePartitions => R::CreatePartitions(Default::default()),
        ApiKey::IncrementalAlterConfigs => R::IncrementalAlterConfigs(Default::default()),
        ApiKey::FindCoordinator => R::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => R::JoinGroup(Default::default()),
        ApiKey::SyncGroup => R::SyncGroup(Default::default()),
        ApiKey::Heartbeat => R::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => R::LeaveGroup(Default::default()),
        ApiKey::OffsetCommit => R::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => R::OffsetFetch(Default::default()),
        ApiKey::ListGroups => R::ListGroups(Default::default()),
        ApiKey::DescribeGroups => R::DescribeGroups(Default::default()),
        ApiKey::DeleteGroups => R::DeleteGroups(Default::default()),
        ApiKey::OffsetDelete => R::OffsetDelete(Default::default()),
        ApiKey::InitProducerId => R::InitProducerId(Default::default()),
        ApiKey::DescribeProducers => R::DescribeProducers(Default::default()),
        ApiKey::TxnOffsetCommit => R::TxnOffsetCommit(Default::default()),
        ApiKey::DescribeCluster => R::DescribeCluster(Default::default()),
        ApiKey::DescribeTopicPartitions => R::DescribeTopicPartitions(Default::default()),
        ApiKey::UpdateFeatures => R::UpdateFeatures(Default::default()),
        ApiKey::AlterReplicaLogDirs => R::AlterReplicaLogDirs(Default::default()),
        ApiKey::ListConfigResources => R::ListConfigResources(Default::default()),
        ApiKey::ElectLeaders => R::ElectLeaders(Default::default()),
        ApiKey::OffsetForLeaderEpoch => R::OffsetForLeaderEpoch(Default::default()),
        ApiKey::AddPartitionsToTxn => R::AddPartitionsToTxn(Default::default()),
        ApiKey::AddOffsetsToTxn => R::AddOffsetsToTxn(Default::default()),
        ApiKey::EndTxn => R::EndTxn(Default::default()),
        ApiKey::DescribeTransactions => R::DescribeTransactions(Default::default()),
        ApiKey::ListTransactions => R::ListTransactions(Default::default()),
        ApiKey::AddRaftVoter => R::AddRaftVoter(Default::default()),
        ApiKey::AlterClientQuotas => R::AlterClientQuotas(Default::default()),
        ApiKey::AlterPartitionReassignments => R::AlterPartitionReassignments(Default::default()),
        ApiKey::AlterUserScramCredentials => R::AlterUserScramCredentials(Default::default()),
        ApiKey::ConsumerGroupDescribe => R::ConsumerGroupDescribe(Default::default()),
        ApiKey::ConsumerGroupHeartbeat => R::ConsumerGroupHeartbeat(Default::default()),
        ApiKey::CreateAcls => R::CreateAcls(Default::default()),
        ApiKey::DeleteAcls => R::DeleteAcls(Default::default()),
        ApiKey::DeleteRecords => R::DeleteRecords(Default::default()),
        ApiKey::DescribeAcls => R::DescribeAcls(Default::default()),
        ApiKey::DescribeClientQuotas => R::DescribeClientQuotas(Default::default()),
        ApiKey::DescribeLogDirs => R::DescribeLogDirs(Default::default()),
        ApiKey::DescribeQuorum => R::DescribeQuorum(Default::default()),
        ApiKey::DescribeUserScramCredentials => R::DescribeUserScramCredentials(Default::default()),
        ApiKey::ListPartitionReassignments => R::ListPartitionReassignments(Default::default()),
        ApiKey::RemoveRaftVoter => R::RemoveRaftVoter(Default::default()),
        ApiKey::SaslAuthenticate => R::SaslAuthenticate(Default::default()),
        ApiKey::SaslHandshake => R::SaslHandshake(Default::default()),
        ApiKey::UnregisterBroker => R::UnregisterBroker(Default::default()),
        ApiKey::WriteTxnMarkers => R::WriteTxnMarkers(Default::default()),
        ApiKey::CreateDelegationToken => R::CreateDelegationToken(Default::default()),
        ApiKey::RenewDelegationToken => R::RenewDelegationToken(Default::default()),
        ApiKey::ExpireDelegationToken => R::ExpireDelegationToken(Default::default()),
        ApiKey::DescribeDelegationToken => R::DescribeDelegationToken(Default::default()),
        other => panic!("{other:?} is served but has no seed"),
    }
}

/// Header and body of `req` at `version`, as a frame without its size;
/// `None` when the request cannot be encoded at that version.
fn frame(key: ApiKey, version: i16, req: &RequestKind) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .ok()?;
    req.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn request_decode(dir: &Path) {
    let topic = TopicName(StrBytes::from_static_str("t"));
    let batch = one_batch();
    let produce = ProduceRequest::default().with_acks(1).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(topic.clone())
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))]),
    ]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic.clone())),
    ]));
    let fetch = FetchRequest::default().with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(topic.clone())
        .with_partitions(vec![fetch_request::FetchPartition::default()])]);
    let rich = [
        (ApiKey::Produce, RequestKind::Produce(produce)),
        (ApiKey::Metadata, RequestKind::Metadata(metadata)),
        (ApiKey::Fetch, RequestKind::Fetch(fetch)),
    ];
    for api in APIS {
        let default = default_request(api.key);
        for version in api.min..=api.max {
            let name = format!("{:?}-v{version}", api.key);
            if let Some(f) = frame(api.key, version, &default) {
                write(dir, &name, &f);
            }
            for (key, req) in &rich {
                if *key == api.key {
                    if let Some(f) = frame(api.key, version, req) {
                        write(dir, &format!("{name}-full"), &f);
                    }
                }
            }
        }
    }
}

fn one_batch() -> Bytes {
    build_batch(
        0,
        &[
            (
                Some(b"k"),
                Some(b"value"),
                1_700_000_000_000,
                &[("h", Some(b"1"))],
            ),
            (None, None, 1_700_000_000_001, &[]),
        ],
    )
}

fn record_validate(dir: &Path) {
    let batch = one_batch();
    let two = [batch.to_vec(), build_simple_batch(2, 3, 5).to_vec()].concat();
    // Mode: bit 0 repairs CRCs; bits 1.. pick the bound (64 B << 14 = 1 MiB).
    write(dir, "batch", &[&[14 << 1][..], &batch].concat());
    write(
        dir,
        "batch-fix-crc",
        &[&[(14 << 1) | 1][..], &batch].concat(),
    );
    write(dir, "two-batches", &[&[(14 << 1) | 1][..], &two].concat());
    write(dir, "small-bound", &[&[1 << 1][..], &batch].concat());
}

fn decompress(dir: &Path) {
    let text = b"the quick brown fox jumps over the lazy dog, the quick brown fox".repeat(8);
    let bound_32k = 15 << 2;
    for (i, codec) in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd]
        .into_iter()
        .enumerate()
    {
        let mut stream = vec![i as u8 | bound_32k];
        compress(codec, &text, None, &mut stream);
        write(dir, &format!("{codec}-stream"), &stream);
        let mut small = vec![i as u8 | (6 << 2)];
        compress(codec, &text, None, &mut small);
        write(dir, &format!("{codec}-bomb"), &small);
        // Batch mode: the records section of a real batch, 2 records.
        let section = &one_batch()[BATCH_HEADER_LEN..];
        let validate = [&[i as u8 | bound_32k | (2 << 6), 1][..], section].concat();
        write(dir, &format!("{codec}-batch"), &validate);
        let target = (i + 2) % 5;
        let rebuild = [
            &[i as u8 | bound_32k | (3 << 6), 1 | (target as u8) << 2][..],
            section,
        ];
        write(dir, &format!("{codec}-batch-rebuild"), &rebuild.concat());
    }
    // librdkafka's raw snappy: length varint, then one literal.
    write(
        dir,
        "snappy-raw",
        &[1 | bound_32k, 5, 4 << 2, b'h', b'e', b'l', b'l', b'o'],
    );
}

/// A log a real `PartitionLog` wrote: batches, index and time index.
fn segment_recovery(dir: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join("t-0");
    let config = LogConfig {
        index_interval_bytes: 128,
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(part.clone(), config, false).unwrap();
    for i in 0..16 {
        log.append(
            &build_simple_batch(0, 1 + i % 3, 1_700_000_000_000 + i as i64),
            0,
        )
        .unwrap();
    }
    log.close().unwrap();
    let mut bases: Vec<i64> = fs::read_dir(&part)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    let parts = |base: i64| -> Vec<u8> {
        let mut out = Vec::new();
        for suffix in ["log", "index", "timeindex"] {
            let bytes = fs::read(segment_path(&part, base, suffix)).unwrap_or_default();
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    };
    // Flags: 1 clean shutdown, 2 repair CRCs, 4 two segments, 8 index files.
    let one = parts(bases[0]);
    write(dir, "one-segment", &[&[0u8][..], &one].concat());
    write(dir, "one-segment-indexes", &[&[8u8][..], &one].concat());
    let second = [&(bases[1] as u32).to_be_bytes()[..], &parts(bases[1])].concat();
    for flags in [4u8, 4 | 8, 1 | 4 | 8] {
        write(
            dir,
            &format!("two-segments-{flags}"),
            &[&[flags][..], &one, &second].concat(),
        );
    }
}
