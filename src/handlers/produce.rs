//! Produce: batches go as received to their partitions' owner shards.
//! v10 (KIP-951) names the new leader of a partition answered
//! NOT_LEADER_OR_FOLLOWER and lists its endpoint; v11 lets the broker
//! answer TRANSACTION_ABORTABLE when a transactional batch's partition is
//! not in its producer's transaction (`txn_verify`, KIP-890); v13 names
//! topics by id (KIP-516): an id that is no topic's (a topic deleted, or
//! deleted and made again) answers UNKNOWN_TOPIC_ID, so a producer never
//! writes to a topic it did not mean.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use bytes::Bytes;

use super::access::Access;
use super::leader_hint::{produce_wants_hint, LeaderHints};
use super::ApiSpec;
use crate::compression::{
    keyless_records, out_of_range_timestamps, prepare_produce, CompressionError, ProducePolicy,
    RefusedRecords, TimestampBounds,
};
use crate::metadata::TopicMeta;
use crate::record::Validated;
use crate::shard::{ProduceItem, Shard, TopicPartition};
use crate::storage::AppendOrigin;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::Produce,
    // v0-2 (the magic 0/1 message formats) through the version bridge
    // (`handlers::legacy`); v12 is transaction version 2's (`txn_verify`).
    min: 0,
    max: 13,
};

/// The first version that names topics by id.
const TOPIC_IDS_SINCE: i16 = 13;

/// The first version with KIP-951's leader hints.
const LEADER_HINTS_SINCE: i16 = 10;

/// Most `record_errors` one partition's answer lists: a batch of tiny
/// keyless records would otherwise make an answer larger than the request.
/// The partition's `error_message` still counts them all.
const RECORD_ERRORS_MAX: usize = 100;

/// Why a partition's batches were refused, as its Produce answer says it.
struct Refusal {
    code: i16,
    /// Kafka's partition `error_message` (Produce v8+).
    message: Option<String>,
    /// Kafka's `record_errors` (Produce v8+): which records, and why.
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl Refusal {
    fn code(code: i16) -> Refusal {
        Refusal {
            code,
            message: None,
            record_errors: Vec::new(),
        }
    }

    /// Kafka's refusal of records one by one: a record error each, with
    /// `reason`, and a partition message in Kafka's words (which name the
    /// total and show the first three).
    fn records(code: i16, reason: String, refused: RefusedRecords) -> Refusal {
        let shown: Vec<String> = refused
            .indexes
            .iter()
            .take(3)
            .map(|i| format!("RecordError(batchIndex={i}, message='{reason}')"))
            .collect();
        let message = format!(
            "One or more records have been rejected due to {} record errors in total, \
             and only showing the first three errors at most: [{}]",
            refused.count,
            shown.join(", ")
        );
        let reason = StrBytes::from_string(reason);
        let record_errors = refused
            .indexes
            .into_iter()
            .map(|i| {
                let mut e = BatchIndexAndErrorMessage::default();
                e.batch_index = i;
                e.batch_index_error_message = Some(reason.clone());
                e
            })
            .collect();
        Refusal {
            code,
            message: Some(message),
            record_errors,
        }
    }

    /// Kafka's refusal of keyless records on a compacted topic.
    fn keyless(tp: &TopicPartition, keyless: RefusedRecords) -> Refusal {
        let reason = format!(
            "Compacted topic cannot accept message without key in topic partition {}-{}.",
            tp.topic, tp.partition
        );
        Refusal::records(ResponseError::InvalidRecord.code(), reason, keyless)
    }

    /// Kafka's refusal of records whose timestamps are out of the topic's
    /// range.
    fn timestamps(bounds: TimestampBounds, now_ms: i64, refused: RefusedRecords) -> Refusal {
        let reason = format!(
            "Timestamp of message is out of range. The timestamp should be within [{}, {}]",
            now_ms.saturating_sub(bounds.before_ms),
            now_ms.saturating_add(bounds.after_ms)
        );
        Refusal::records(ResponseError::InvalidTimestamp.code(), reason, refused)
    }

    fn answer(self, p: &mut PartitionProduceResponse) {
        p.error_code = self.code;
        p.error_message = self.message.map(StrBytes::from_string);
        p.record_errors = self.record_errors;
    }
}

/// Checks a partition's batches (compressed ones as a bounded stream) and
/// rebuilds them in the topic's codec, here on the connection's shard so the
/// cost spreads over cores and the owner only appends.
fn prepare(
    shard: &Shard,
    meta: &TopicMeta,
    dynamic: &crate::broker_configs::BrokerConfigs,
    api_version: i16,
    tp: &TopicPartition,
    records: &Bytes,
) -> Result<Validated, Refusal> {
    let parsed = meta.parsed(&shard.config, dynamic);
    let policy = ProducePolicy {
        api_version,
        now_ms: crate::runtime::now_ms(),
        ..parsed.produce
    };
    let log_config = &parsed.log;
    let refused = |e: CompressionError| {
        tracing::debug!(error = %e, "produce batch refused");
        Refusal::code(e.error_code())
    };
    let prepared = prepare_produce(records, log_config.max_message_bytes, &policy);
    let records = match (prepared, policy.timestamps) {
        (Err(CompressionError::InvalidTimestamp), Some(bounds)) => {
            let out_of_range = out_of_range_timestamps(records, bounds, &policy, RECORD_ERRORS_MAX)
                .map_err(refused)?;
            return Err(Refusal::timestamps(bounds, policy.now_ms, out_of_range));
        }
        (prepared, _) => prepared.map_err(refused)?,
    };
    // Kafka refuses keyless records for compacted topics: compaction could
    // never keep or drop them by key.
    if log_config.cleanup_compact {
        let keyless = keyless_records(
            records.bytes(),
            policy.decompressed_bytes_max,
            RECORD_ERRORS_MAX,
        )
        .map_err(refused)?;
        if keyless.count > 0 {
            return Err(Refusal::keyless(tp, keyless));
        }
    }
    Ok(records)
}

/// Answers `None` for acks=0: Kafka sends no response at all then.
/// Authorization as Kafka's KafkaApis: transactional batches need
/// Write on the request's transactional id (else every partition answers
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED), each topic needs Write (else
/// TOPIC_AUTHORIZATION_FAILED); nothing refused reaches a log.
///
/// `on_appended`, if any, is called once the batches are appended (or
/// refused), before their acknowledgements are waited for.
pub async fn handle(
    shard: &Rc<Shard>,
    txns: &Rc<crate::txn::Coordinator>,
    access: &Access,
    header: &RequestHeader,
    request: ProduceRequest,
    on_appended: Option<impl FnOnce()>,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout_ms = request.timeout_ms.max(0) as u64;
    let topics = shard.topics();
    use crate::security::acl::Operation;
    let txn_denied = !access.is_all()
        && has_transactional_records(&request)
        && !request
            .transactional_id
            .as_ref()
            .is_some_and(|id| access.transactional_id(Operation::Write, id));
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut items = Vec::new();
    // Where each item's outcome goes: (topic response, partition response).
    let mut slots = Vec::new();
    let by_id = header.request_api_version >= TOPIC_IDS_SINCE;
    for topic in request.topic_data {
        let named = if by_id {
            topics.name_of(topic.topic_id)
        } else {
            Some(topic.name.0.as_str())
        };
        let topic_name: Arc<str> = Arc::from(named.unwrap_or_default());
        let meta = topics.get(&topic_name);
        // Kafka's order: an unknown id before authorization, which needs a
        // name to check.
        let denied = if named.is_none() {
            Some(ResponseError::UnknownTopicId.code())
        } else if txn_denied {
            Some(ResponseError::TransactionalIdAuthorizationFailed.code())
        } else {
            (!access.topic(Operation::Write, &topic_name))
                .then_some(ResponseError::TopicAuthorizationFailed.code())
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let mut p = PartitionProduceResponse::default();
            p.index = data.index;
            p.base_offset = -1;
            p.log_append_time_ms = -1;
            p.log_start_offset = -1;
            let tp = TopicPartition {
                topic: topic_name.clone(),
                partition: data.index,
            };
            match data.records {
                _ if denied.is_some() => p.error_code = denied.expect("checked"),
                _ if !matches!(acks, -1..=1) => {
                    p.error_code = ResponseError::InvalidRequiredAcks.code()
                }
                Some(records)
                    if meta.is_some_and(|m| (0..m.partitions).contains(&tp.partition)) =>
                {
                    let meta = meta.expect("checked above");
                    match prepare(
                        shard,
                        meta,
                        &topics.broker_configs,
                        header.request_api_version,
                        &tp,
                        &records,
                    ) {
                        Ok(records) => {
                            slots.push((responses.len(), partitions.len()));
                            items.push(ProduceItem {
                                tp,
                                records,
                                acks,
                                origin: AppendOrigin::Client,
                                timeout_ms,
                                txn_verified: None,
                            });
                        }
                        Err(refusal) => refusal.answer(&mut p),
                    }
                    // Validation and recompression are CPU work on this
                    // shard; let its other connections in between partitions.
                    crate::runtime::yield_if_needed().await;
                }
                Some(_) => p.error_code = ResponseError::UnknownTopicOrPartition.code(),
                None => p.error_code = ResponseError::CorruptMessage.code(),
            }
            partitions.push(p);
        }
        let mut t = TopicProduceResponse::default();
        // The name also for v13, which does not encode it: the leader
        // hints below look partitions up by name.
        t.name = if by_id {
            TopicName(StrBytes::from_string(topic_name.to_string()))
        } else {
            topic.name
        };
        t.topic_id = topic.topic_id;
        t.partition_responses = partitions;
        responses.push(t);
    }
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.as_str());
    let version = header.request_api_version;
    let unverified =
        super::txn_verify::verify(shard, txns, transactional_id, version, &mut items).await;
    if !unverified.is_empty() {
        let mut refusals = unverified.into_iter().peekable();
        let mut kept = Vec::with_capacity(items.len());
        let mut kept_slots = Vec::with_capacity(slots.len());
        for (i, (item, (t, p))) in items.into_iter().zip(slots).enumerate() {
            match refusals.next_if(|&(r, _)| r == i) {
                Some((_, code)) => responses[t].partition_responses[p].error_code = code,
                None => {
                    kept.push(item);
                    kept_slots.push((t, p));
                }
            }
        }
        (items, slots) = (kept, kept_slots);
    }
    let outcomes = shard.produce_ordered(items, on_appended).await;
    if acks == 0 {
        return None;
    }
    for ((t, p), outcome) in slots.into_iter().zip(outcomes) {
        let part = &mut responses[t].partition_responses[p];
        part.error_code = outcome.error;
        part.base_offset = outcome.base_offset;
        part.log_append_time_ms = outcome.log_append_time_ms;
        part.log_start_offset = outcome.log_start_offset;
    }
    for p in responses.iter().flat_map(|t| &t.partition_responses) {
        crate::stats::count_error(crate::stats::CountedApi::Produce, p.error_code);
    }
    let mut response = ProduceResponse::default();
    if header.request_api_version >= LEADER_HINTS_SINCE {
        response.node_endpoints = leader_hints(shard, &mut responses);
    }
    response.responses = responses;
    Some(response)
}

/// Kafka's `RequestUtils.hasTransactionalRecords`: whether the first
/// batch of some partition is transactional (those need Write on the
/// request's transactional id). Validation checks the batches later.
fn has_transactional_records(request: &ProduceRequest) -> bool {
    use crate::record::{ATTRIBUTES_OFFSET, ATTR_TRANSACTIONAL, BATCH_HEADER_LEN, MAGIC_OFFSET};
    let transactional = |batch: &[u8]| {
        batch.len() >= BATCH_HEADER_LEN
            && batch[MAGIC_OFFSET] as i8 == crate::record::MAGIC_V2
            && i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]])
                & ATTR_TRANSACTIONAL
                != 0
    };
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .any(|p| p.records.as_deref().is_some_and(transactional))
}

/// Fills `current_leader` of every partition answered NOT_LEADER_OR_FOLLOWER
/// (KIP-951); the endpoints of the leaders named.
fn leader_hints(shard: &Shard, responses: &mut [TopicProduceResponse]) -> Vec<NodeEndpoint> {
    let topics = shard.topics();
    let mut hints = LeaderHints::new(&topics);
    for t in responses.iter_mut() {
        for p in t
            .partition_responses
            .iter_mut()
            .filter(|p| produce_wants_hint(p.error_code))
        {
            let (leader, epoch) = hints.leader(t.name.0.as_str(), p.index);
            p.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
        }
    }
    hints
        .nodes()
        .into_iter()
        .map(|n| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(n.id))
                .with_host(StrBytes::from_string(n.host))
                .with_port(n.port)
                .with_rack(n.rack.map(StrBytes::from_string))
        })
        .collect()
}
