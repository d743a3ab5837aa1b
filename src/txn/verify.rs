//! KIP-890 from a partition leader's side: before a transactional batch
//! opens a transaction in a partition, the leader asks the transactional
//! id's coordinator whether the partition is in the producer's open
//! transaction (or, under transaction version 2, adds it), so a late or
//! stray batch cannot open a transaction no coordinator will ever end.
//!
//! The coordinator is this broker's (a [`TxnMsg::AddPartitions`] to its
//! shard) or another broker's (AddPartitionsToTxn v5, the batched form
//! brokers send, over one of a few kept connections).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{coordinated_elsewhere, txn_partition, Coordinator, TxnError, TxnMsg, TXN_TOPIC};
use crate::net::client::KeptConnections;
use crate::shard::TopicPartition;

/// How long a verification may take (connect, the coordinator's answer).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on an AddPartitionsToTxn answer.
const VERIFY_RESPONSE_MAX: u32 = 1 << 20;
/// Idle connections kept per coordinator broker.
const IDLE_CONNECTIONS_MAX: usize = 4;
/// The version sent: the batched form, whose answers name
/// TRANSACTION_ABORTABLE.
const VERSION: i16 = 5;

/// Connections to other brokers' coordinators, kept between
/// verifications: a transaction verifies each partition it writes.
pub fn connections(node_id: i32) -> KeptConnections {
    KeptConnections::new(
        format!("sluice-txn-verify-{node_id}"),
        VERIFY_RESPONSE_MAX,
        VERIFY_TIMEOUT,
        IDLE_CONNECTIONS_MAX,
    )
}

/// The coordinator's code for each partition, in order: 0 when it is in
/// the transaction (now), TRANSACTION_ABORTABLE when it is not, else why
/// the coordinator could not say.
pub async fn verify(
    coord: &Rc<Coordinator>,
    id: &str,
    producer: (i64, i16),
    partitions: Vec<TopicPartition>,
    add: bool,
) -> Vec<i16> {
    crate::stats::TXN_VERIFICATIONS.add(partitions.len() as u64);
    if !coordinated_elsewhere(&coord.shard, id) {
        return local(coord, id, producer, partitions, add).await;
    }
    let count = partitions.len();
    match remote(coord, id, producer, &partitions, add).await {
        Ok(codes) => codes,
        Err(e) => {
            tracing::info!(transactional_id = id, error = %e, "verifying a transaction with its coordinator");
            vec![ResponseError::CoordinatorNotAvailable.code(); count]
        }
    }
}

async fn local(
    coord: &Rc<Coordinator>,
    id: &str,
    producer: (i64, i16),
    partitions: Vec<TopicPartition>,
    add: bool,
) -> Vec<i16> {
    let count = partitions.len();
    let (reply, answer) = oneshot::channel();
    let msg = TxnMsg::AddPartitions {
        transactional_id: id.to_string(),
        producer,
        partitions,
        verify_only: !add,
        reply,
    };
    super::route(coord, id, msg).await;
    match answer.await.unwrap_or(Err(TxnError::NotAvailable)) {
        Ok(inside) => inside
            .into_iter()
            .map(|ok| {
                if ok {
                    0
                } else {
                    ResponseError::TransactionAbortable.code()
                }
            })
            .collect(),
        Err(e) => vec![e.code(true); count],
    }
}

/// Why another broker's coordinator could not be asked.
#[derive(Debug, thiserror::Error)]
enum RemoteError {
    #[error("no leader known for the transactional id's partition")]
    NoCoordinator,
    #[error(transparent)]
    Call(#[from] crate::net::client::ClientError),
}

async fn remote(
    coord: &Rc<Coordinator>,
    id: &str,
    producer: (i64, i16),
    partitions: &[TopicPartition],
    add: bool,
) -> Result<Vec<i16>, RemoteError> {
    let shard = &coord.shard;
    let partition = txn_partition(shard, id);
    let leader = shard
        .topics()
        .cluster
        .as_ref()
        .and_then(|c| c.partition(TXN_TOPIC, partition))
        .map(|p| p.leader)
        .filter(|&l| l >= 0)
        .ok_or(RemoteError::NoCoordinator)?;
    let addr = shard
        .broker_address(leader)
        .ok_or(RemoteError::NoCoordinator)?;
    let request = request(id, producer, partitions, add);
    let response: AddPartitionsToTxnResponse = coord
        .verifiers
        .call(
            &coord.dialer,
            leader,
            &addr,
            (ApiKey::AddPartitionsToTxn, VERSION),
            &request,
        )
        .await?;
    Ok(codes(&response, partitions))
}

fn request(
    id: &str,
    (producer_id, epoch): (i64, i16),
    partitions: &[TopicPartition],
    add: bool,
) -> AddPartitionsToTxnRequest {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(!add)
        .with_topics(topics);
    AddPartitionsToTxnRequest::default().with_transactions(vec![txn])
}

/// Each partition's code from the answer: the request's top-level error
/// when it has one, UNKNOWN_SERVER_ERROR for a partition left out.
fn codes(response: &AddPartitionsToTxnResponse, partitions: &[TopicPartition]) -> Vec<i16> {
    if response.error_code != 0 {
        return vec![response.error_code; partitions.len()];
    }
    let mut found: HashMap<(&str, i32), i16> = HashMap::new();
    for txn in &response.results_by_transaction {
        for topic in &txn.topic_results {
            for p in &topic.results_by_partition {
                found.insert(
                    (topic.name.0.as_str(), p.partition_index),
                    p.partition_error_code,
                );
            }
        }
    }
    partitions
        .iter()
        .map(|tp| {
            found
                .get(&(&*tp.topic, tp.partition))
                .copied()
                .unwrap_or(ResponseError::UnknownServerError.code())
        })
        .collect()
}
