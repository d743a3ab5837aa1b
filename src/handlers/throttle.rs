//! Client quota charges on the request path (issue 15): what each request
//! costs, charged to the connection's quotas, and the throttle the
//! response reports in throttle_time_ms. The connection loop then mutes the
//! connection (reads nothing) for that long, as a KIP-219 broker does.
//!
//! What is charged, as Kafka's quota managers charge it: a produce request
//! its record bytes, a fetch its response bytes (a follower's fetch
//! nothing; a throttled fetch is answered without records and uncharged,
//! as Kafka's), every request the time its handler kept the shard busy. With
//! no quota configured when the request began (one emptiness check, in the
//! connection loop) each charge returns at once.
//!
//! Where this differs from Kafka 3.9, and why:
//! - Produce is charged its record bytes, Kafka the whole request's size
//!   (the difference is the request's framing, a few dozen bytes a
//!   partition).
//! - ApiVersions and OffsetDelete, whose throttle_time_ms is not the first
//!   field of their response, report 0 for a request_percentage throttle
//!   (their connection is muted all the same).
//! - Request time is the time this shard spent polling the request, not a
//!   handler thread's time: work the partition owner does on another core
//!   is that core's, and waits (long polls, acks=all, the quorum) are free.
//! - The controller mutation quota is drawn on the broker that receives the
//!   request (Kafka's controller draws it, for the whole cluster), and its
//!   throttle is bounded by the rate window like the others.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};

use super::{Client, Piece};
use crate::quota::{QuotaType, Who, Window};
use crate::shard::Shard;

fn charge(
    shard: &Shard,
    client: &Client,
    header: &RequestHeader,
    kind: QuotaType,
    amount: u64,
) -> u64 {
    if !client.quota.active() {
        return 0;
    }
    let topics = shard.topics();
    if topics.client_quotas.is_empty() {
        return 0;
    }
    let window = window(shard);
    let client_id = header.client_id.as_ref().map_or("", |c| c.as_str());
    let principal = client.session.principal_ref();
    let who = Who {
        principal: &principal,
        client_id,
    };
    client.quota.charge(
        &topics.client_quotas,
        topics.version,
        who,
        kind,
        amount,
        window,
    )
}

/// The broker's quota sampling.
fn window(shard: &Shard) -> Window {
    Window::from_config(
        shard.config.quota_window_num,
        shard.config.quota_window_size_seconds,
    )
}

/// The record bytes a produce request carries.
pub(super) fn produce_bytes(request: &ProduceRequest) -> u64 {
    request
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .filter_map(|p| p.records.as_ref())
        .map(|r| r.len() as u64)
        .sum()
}

/// Charges a produce request's bytes and its handler time so far; the
/// throttle its response reports (the larger one, as Kafka answers).
pub(super) fn produce(shard: &Shard, client: &Client, header: &RequestHeader, bytes: u64) -> i32 {
    let bandwidth = charge(shard, client, header, QuotaType::Produce, bytes);
    as_throttle(bandwidth.max(request(shard, client, header)))
}

/// Charges a consumer's fetch answer of `bytes` and its handler time so
/// far; the throttle (0: the answer goes out as it is). A throttled answer
/// goes out empty, as from Kafka, so its bytes are taken back off the
/// fetch quota (Kafka's `unrecordQuotaSensor`): the client fetches them
/// again after the throttle. (A follower's fetch is not charged.)
pub(super) fn fetch(shard: &Shard, client: &Client, header: &RequestHeader, bytes: u64) -> u64 {
    let bandwidth = charge(shard, client, header, QuotaType::Fetch, bytes);
    let ms = bandwidth.max(request(shard, client, header));
    if ms > 0 {
        client
            .quota
            .uncharge(QuotaType::Fetch, bytes, window(shard));
    }
    ms
}

/// Charges a share group member's ShareFetch answer of `bytes` and its
/// handler time; the throttle. Unlike a fetch's, a throttled answer goes
/// out whole and stays charged: its records are acquired for the member
/// (sent empty, they would stay locked until their locks ran out), and the
/// member backs off for the throttle before its next fetch.
pub(super) fn share_fetch(
    shard: &Shard,
    client: &Client,
    header: &RequestHeader,
    bytes: u64,
) -> u64 {
    let bandwidth = charge(shard, client, header, QuotaType::Fetch, bytes);
    bandwidth.max(request(shard, client, header))
}

/// The controller mutation quota of one CreateTopics, CreatePartitions or
/// DeleteTopics request (KIP-599, Kafka's ControllerMutationQuotaManager):
/// each topic's partitions created or deleted are drawn from the client's
/// bucket. From the version given (`strict_since`) a topic met by a bucket
/// already below zero is refused with THROTTLING_QUOTA_EXCEEDED (strict);
/// before it, every topic goes ahead and the request is throttled once the
/// bucket is below zero (permissive). Validate-only requests draw nothing.
pub(super) struct Mutations<'a> {
    shard: &'a Shard,
    client: &'a Client,
    header: &'a RequestHeader,
    strict: bool,
    /// Whether any draw can apply: quotas configured and not validate-only.
    counted: bool,
    throttle_ms: u64,
}

impl<'a> Mutations<'a> {
    pub(super) fn new(
        shard: &'a Shard,
        client: &'a Client,
        header: &'a RequestHeader,
        strict_since: i16,
        validate_only: bool,
    ) -> Mutations<'a> {
        Mutations {
            shard,
            client,
            header,
            strict: header.request_api_version >= strict_since,
            counted: !validate_only
                && client.quota.active()
                && !shard.topics().client_quotas.is_empty(),
            throttle_ms: 0,
        }
    }

    fn draw(&self, partitions: u64) -> u64 {
        let topics = self.shard.topics();
        let client_id = self.header.client_id.as_ref().map_or("", |c| c.as_str());
        let principal = self.client.session.principal_ref();
        let who = Who {
            principal: &principal,
            client_id,
        };
        self.client.quota.mutate(
            &topics.client_quotas,
            topics.version,
            who,
            partitions,
            window(self.shard),
        )
    }

    /// Whether the next topic may go ahead: in strict mode not while the
    /// bucket is below zero (the topic is then answered
    /// THROTTLING_QUOTA_EXCEEDED and the request throttled).
    pub(super) fn admit(&mut self) -> bool {
        if !self.counted || !self.strict {
            return true;
        }
        let ms = self.draw(0);
        self.throttle_ms = self.throttle_ms.max(ms);
        ms == 0
    }

    /// Draws the partitions a topic's mutation created or deleted; a
    /// permissive request is throttled once that takes it over the quota.
    pub(super) fn record(&mut self, partitions: u64) {
        if !self.counted || partitions == 0 {
            return;
        }
        let ms = self.draw(partitions);
        if !self.strict {
            self.throttle_ms = self.throttle_ms.max(ms);
        }
    }

    /// The throttle for the response's throttle_time_ms; the connection is
    /// muted for it.
    pub(super) fn finish(self) -> i32 {
        self.client.quota.throttle_mutation(self.throttle_ms);
        as_throttle(self.throttle_ms)
    }
}

/// Charges the request's handler time so far against request_percentage;
/// the throttle in milliseconds.
pub(super) fn request(shard: &Shard, client: &Client, header: &RequestHeader) -> u64 {
    let busy = client.quota.busy_ns();
    charge(shard, client, header, QuotaType::Request, busy)
}

/// The first version of `key`'s response whose body starts with
/// throttle_time_ms; `None` where it has none there (Produce, Fetch and
/// ShareFetch set theirs themselves).
fn throttle_first_since(key: ApiKey) -> Option<i16> {
    use ApiKey as K;
    Some(match key {
        K::Metadata | K::OffsetCommit | K::OffsetFetch => 3,
        K::ListOffsets | K::JoinGroup | K::CreateTopics | K::OffsetForLeaderEpoch => 2,
        K::FindCoordinator
        | K::Heartbeat
        | K::LeaveGroup
        | K::SyncGroup
        | K::DescribeGroups
        | K::ListGroups
        | K::DeleteTopics => 1,
        K::InitProducerId
        | K::AddPartitionsToTxn
        | K::AddOffsetsToTxn
        | K::EndTxn
        | K::TxnOffsetCommit
        | K::DescribeAcls
        | K::CreateAcls
        | K::DeleteAcls
        | K::DescribeConfigs
        | K::AlterConfigs
        | K::CreatePartitions
        | K::IncrementalAlterConfigs
        | K::DescribeCluster
        | K::DescribeTopicPartitions
        | K::UpdateFeatures
        | K::AlterReplicaLogDirs
        | K::ListConfigResources
        | K::ElectLeaders
        | K::DescribeProducers
        | K::DescribeTransactions
        | K::ListTransactions
        | K::DescribeUserScramCredentials
        | K::AlterUserScramCredentials
        | K::DescribeClientQuotas
        | K::AlterClientQuotas
        | K::ShareAcknowledge
        | K::ShareGroupHeartbeat
        | K::ShareGroupDescribe
        | K::DescribeShareGroupOffsets => 0,
        _ => return None,
    })
}

/// Writes a request_percentage throttle into an encoded response frame
/// (size prefix, response header, body) whose body starts with
/// throttle_time_ms; only a throttled response pays the copy.
pub(super) fn report(key: ApiKey, version: i16, frame: &mut [Piece], ms: u64) {
    if throttle_first_since(key).is_none_or(|since| version < since) {
        return;
    }
    // Size prefix, correlation id, and in a flexible header its (empty)
    // tagged fields.
    let at = 8 + usize::from(key.response_header_version(version) >= 1);
    let Some(Piece::Bytes(head)) = frame.first_mut() else {
        return;
    };
    if head.len() < at + 4 {
        return;
    }
    let mut copy = BytesMut::from(&head[..]);
    copy[at..at + 4].copy_from_slice(&as_throttle(ms).to_be_bytes());
    *head = copy.freeze();
}

fn as_throttle(ms: u64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// Whether the client of a request frame backs off by itself for the
/// throttle_time_ms of its response (KIP-219: Produce v6+, Fetch v8+, the
/// versions that report the throttle here), so its response goes out at
/// once; to an older client the response goes out after the throttle, as
/// Kafka sends it.
pub fn client_throttles(frame: &[u8]) -> bool {
    let (Some(key), Some(version)) = (frame.get(..2), frame.get(2..4)) else {
        return true;
    };
    let key = i16::from_be_bytes([key[0], key[1]]);
    let version = i16::from_be_bytes([version[0], version[1]]);
    match ApiKey::try_from(key) {
        Ok(ApiKey::Produce) => version >= 6,
        Ok(ApiKey::Fetch) => version >= 8,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The throttle lands where each response's codec reads
    /// throttle_time_ms, at every version that starts with it.
    #[test]
    fn request_throttles_are_written_where_responses_keep_them() {
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::Decodable;
        macro_rules! check {
            ($($key:ident => $ty:ty),* $(,)?) => {$(
                let key = ApiKey::$key;
                let since = throttle_first_since(key).expect(stringify!($key));
                let known = key.valid_versions();
                for version in since.max(known.min)..=known.max {
                    let mut frame =
                        super::super::encode(key, version, 7, <$ty>::default()).unwrap();
                    report(key, version, &mut frame, 1234);
                    let Piece::Bytes(bytes) = &frame[0] else { unreachable!() };
                    let mut body = bytes.slice(4..);
                    ResponseHeader::decode(&mut body, key.response_header_version(version))
                        .unwrap();
                    let decoded = <$ty>::decode(&mut body, version).unwrap();
                    assert_eq!(decoded.throttle_time_ms, 1234, "{key:?} v{version}");
                }
            )*};
        }
        check!(
            Metadata => MetadataResponse,
            OffsetCommit => OffsetCommitResponse,
            OffsetFetch => OffsetFetchResponse,
            ListOffsets => ListOffsetsResponse,
            JoinGroup => JoinGroupResponse,
            CreateTopics => CreateTopicsResponse,
            OffsetForLeaderEpoch => OffsetForLeaderEpochResponse,
            FindCoordinator => FindCoordinatorResponse,
            Heartbeat => HeartbeatResponse,
            LeaveGroup => LeaveGroupResponse,
            SyncGroup => SyncGroupResponse,
            DescribeGroups => DescribeGroupsResponse,
            ListGroups => ListGroupsResponse,
            DeleteTopics => DeleteTopicsResponse,
            InitProducerId => InitProducerIdResponse,
            AddPartitionsToTxn => AddPartitionsToTxnResponse,
            AddOffsetsToTxn => AddOffsetsToTxnResponse,
            EndTxn => EndTxnResponse,
            TxnOffsetCommit => TxnOffsetCommitResponse,
            DescribeAcls => DescribeAclsResponse,
            CreateAcls => CreateAclsResponse,
            DeleteAcls => DeleteAclsResponse,
            DescribeConfigs => DescribeConfigsResponse,
            ShareAcknowledge => ShareAcknowledgeResponse,
            ShareGroupHeartbeat => ShareGroupHeartbeatResponse,
            ShareGroupDescribe => ShareGroupDescribeResponse,
            DescribeShareGroupOffsets => DescribeShareGroupOffsetsResponse,
            AlterConfigs => AlterConfigsResponse,
            CreatePartitions => CreatePartitionsResponse,
            IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
            DescribeCluster => DescribeClusterResponse,
            DescribeTopicPartitions => DescribeTopicPartitionsResponse,
            UpdateFeatures => UpdateFeaturesResponse,
            AlterReplicaLogDirs => AlterReplicaLogDirsResponse,
            ListConfigResources => ListConfigResourcesResponse,
            ElectLeaders => ElectLeadersResponse,
            DescribeProducers => DescribeProducersResponse,
            DescribeTransactions => DescribeTransactionsResponse,
            ListTransactions => ListTransactionsResponse,
            DescribeUserScramCredentials => DescribeUserScramCredentialsResponse,
            AlterUserScramCredentials => AlterUserScramCredentialsResponse,
            DescribeClientQuotas => DescribeClientQuotasResponse,
            AlterClientQuotas => AlterClientQuotasResponse,
        );
    }

    #[test]
    fn clients_throttle_themselves_from_kip_219_on() {
        let frame = |key: ApiKey, version: i16| {
            let mut f = (key as i16).to_be_bytes().to_vec();
            f.extend_from_slice(&version.to_be_bytes());
            f
        };
        assert!(!client_throttles(&frame(ApiKey::Produce, 5)));
        assert!(client_throttles(&frame(ApiKey::Produce, 6)));
        assert!(!client_throttles(&frame(ApiKey::Fetch, 7)));
        assert!(client_throttles(&frame(ApiKey::Fetch, 8)));
        assert!(client_throttles(&frame(ApiKey::Metadata, 0)));
        assert!(client_throttles(&[0]));
    }
}
