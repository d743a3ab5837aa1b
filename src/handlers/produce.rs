//! Produce: batches go as received to their partitions' owner shards.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader};
use kafka_protocol::ResponseError;

use bytes::Bytes;

use super::ApiSpec;
use crate::compression::{all_records_keyed, prepare_produce, CompressionError};
use crate::config::TopicConfigs;
use crate::shard::{ProduceItem, Shard, TopicPartition};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::Produce,
    min: 3,
    max: 9,
};

/// Checks a partition's batches (compressed ones as a bounded stream) and
/// rebuilds them in the topic's codec, here on the connection's shard so the
/// cost spreads over cores and the owner only appends. Errors are Kafka codes.
fn prepare(
    shard: &Shard,
    configs: &TopicConfigs,
    api_version: i16,
    records: &Bytes,
) -> Result<Bytes, i16> {
    let policy = shard.config.produce_policy(configs, api_version);
    let log_config = shard.config.log_config(configs);
    let refused = |e: CompressionError| {
        tracing::debug!(error = %e, "produce batch refused");
        e.error_code()
    };
    let records =
        prepare_produce(records, log_config.max_message_bytes, &policy).map_err(refused)?;
    // Kafka refuses keyless records for compacted topics: compaction could
    // never keep or drop them by key.
    if log_config.cleanup_compact
        && !all_records_keyed(&records, policy.decompressed_bytes_max).map_err(refused)?
    {
        return Err(ResponseError::InvalidRecord.code());
    }
    Ok(records)
}

/// Answers `None` for acks=0: Kafka sends no response at all then.
pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let topics = shard.topics();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut items = Vec::new();
    // Where each item's outcome goes: (topic response, partition response).
    let mut slots = Vec::new();
    for topic in request.topic_data {
        let topic_name: Arc<str> = Arc::from(topic.name.0.as_str());
        let meta = topics.get(&topic_name);
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
                _ if !matches!(acks, -1..=1) => {
                    p.error_code = ResponseError::InvalidRequiredAcks.code()
                }
                Some(records)
                    if meta.is_some_and(|m| (0..m.partitions).contains(&tp.partition)) =>
                {
                    let configs = &meta.expect("checked above").configs;
                    match prepare(shard, configs, header.request_api_version, &records) {
                        Ok(records) => {
                            slots.push((responses.len(), partitions.len()));
                            items.push(ProduceItem { tp, records, acks });
                        }
                        Err(code) => p.error_code = code,
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
        t.name = topic.name;
        t.partition_responses = partitions;
        responses.push(t);
    }
    let outcomes = shard.produce(items).await;
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
    let mut response = ProduceResponse::default();
    response.responses = responses;
    Some(response)
}
