//! The produce path's KIP-890 step: a transactional batch that would open
//! a transaction in its partition is first verified with the
//! transactional id's coordinator (Produce v11 and older: is the partition
//! in the producer's open transaction?) or added to the transaction by it
//! (v12, transaction version 2, where clients send no AddPartitionsToTxn).
//! The owner then appends it only if no marker came in between
//! (`shard::produce::check_verified`). Batches joining a transaction
//! already open in their partition go straight to their owners.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use crate::shard::{ProduceItem, Shard};
use crate::txn::Coordinator;

/// The first Produce version whose clients take TRANSACTION_ABORTABLE.
const ABORTABLE_SINCE: i16 = 11;
/// The first Produce version of transaction version 2: the leader adds the
/// partition to the transaction.
pub const ADD_PARTITION_SINCE: i16 = 12;
/// How long an add waits out a transaction that is still ending (the
/// coordinator answers CONCURRENT_TRANSACTIONS until its markers are
/// written), as Kafka's add.partitions.to.txn.retry.backoff.max.ms.
const CONCURRENT_RETRY_FOR: Duration = Duration::from_millis(100);
const CONCURRENT_RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// Verifies (or adds) each item whose batch would open a transaction in
/// its partition, marking the ones the coordinator confirmed. Returns
/// the refused ones: (index in `items`, the code to answer).
pub async fn verify(
    shard: &Rc<Shard>,
    txns: &Rc<Coordinator>,
    transactional_id: Option<&str>,
    version: i16,
    items: &mut [ProduceItem],
) -> Vec<(usize, i16)> {
    let wanted: Vec<(usize, (i64, i16))> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| Some((i, item.records.transactional_producer()?)))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let Some(id) = transactional_id.filter(|id| crate::txn::valid_transactional_id(id)) else {
        // Kafka's answer to transactional batches without a transactional
        // id: nothing could authorize them.
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        crate::stats::TXN_UNVERIFIED_REFUSED.add(wanted.len() as u64);
        return wanted.into_iter().map(|(i, _)| (i, code)).collect();
    };
    let asked = wanted
        .iter()
        .map(|&(i, producer)| (items[i].tp.clone(), producer))
        .collect();
    let points = shard.txn_verification_points(asked).await;
    // Per producer, the items to ask about and the point each was at.
    let mut open: BTreeMap<(i64, i16), Vec<(usize, i64)>> = BTreeMap::new();
    for ((i, producer), point) in wanted.into_iter().zip(points) {
        // Already in an open transaction there, or not led here (the
        // append answers that).
        if let Ok(Some(point)) = point {
            open.entry(producer).or_default().push((i, point));
        }
    }
    let add = version >= ADD_PARTITION_SINCE;
    let mut refused = Vec::new();
    for (producer, asked) in open {
        let partitions = asked.iter().map(|&(i, _)| items[i].tp.clone()).collect();
        let codes = ask(txns, id, producer, partitions, add).await;
        for ((i, point), code) in asked.into_iter().zip(codes) {
            if code == 0 {
                items[i].txn_verified = Some(point);
            } else {
                tracing::debug!(transactional_id = id, topic = %items[i].tp.topic, partition = items[i].tp.partition, code, "transactional batch not verified");
                crate::stats::TXN_UNVERIFIED_REFUSED.add(1);
                refused.push((i, producer_code(code, version)));
            }
        }
    }
    // In the items' order, as the caller walks them.
    refused.sort_unstable();
    refused
}

/// The coordinator's codes; an add waits out a transaction still ending.
pub async fn ask(
    txns: &Rc<Coordinator>,
    id: &str,
    producer: (i64, i16),
    partitions: Vec<crate::shard::TopicPartition>,
    add: bool,
) -> Vec<i16> {
    let started = std::time::Instant::now();
    let concurrent = ResponseError::ConcurrentTransactions.code();
    loop {
        let codes = crate::txn::verify(txns, id, producer, partitions.clone(), add).await;
        let again = add
            && codes.contains(&concurrent)
            && started.elapsed() + CONCURRENT_RETRY_BACKOFF < CONCURRENT_RETRY_FOR;
        if !again {
            return codes;
        }
        crate::runtime::sleep(CONCURRENT_RETRY_BACKOFF).await;
    }
}

/// The coordinator's answer to a produce's verification as Kafka's
/// partition leader passes it on (ReplicaManager): its retriable codes as
/// NOT_ENOUGH_REPLICAS, which producers retry without a metadata refresh
/// (older ones do not retry the coordinator's own codes on a produce).
fn producer_code(code: i16, version: i16) -> i16 {
    let concurrent_retried = version < ADD_PARTITION_SINCE;
    let retriable = ResponseError::NotEnoughReplicas.code();
    client_code(
        code,
        version >= ABORTABLE_SINCE,
        concurrent_retried,
        retriable,
    )
}

/// A verification's code as the client of the request that needed it gets
/// it (Kafka's AddPartitionsToTxnManager): a fenced producer's epoch is
/// invalid; not-in-the-transaction is TRANSACTION_ABORTABLE where the
/// client knows it (`abortable_known`), else INVALID_TXN_STATE; the
/// coordinator's retriable codes (CONCURRENT_TRANSACTIONS only with
/// `concurrent_retried`) become `retriable`.
pub fn client_code(
    code: i16,
    abortable_known: bool,
    concurrent_retried: bool,
    retriable: i16,
) -> i16 {
    use ResponseError as E;
    let is = |e: E| code == e.code();
    if is(E::ProducerFenced) {
        E::InvalidProducerEpoch.code()
    } else if (is(E::TransactionAbortable) && !abortable_known) || is(E::ClusterAuthorizationFailed)
    {
        E::InvalidTxnState.code()
    } else if is(E::NetworkException)
        || is(E::CoordinatorLoadInProgress)
        || is(E::CoordinatorNotAvailable)
        || is(E::NotCoordinator)
        || (is(E::ConcurrentTransactions) && concurrent_retried)
    {
        retriable
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_codes_reach_producers_as_kafka_passes_them_on() {
        use ResponseError as E;
        let abortable = E::TransactionAbortable.code();
        assert_eq!(producer_code(abortable, 10), E::InvalidTxnState.code());
        assert_eq!(producer_code(abortable, 11), abortable);
        assert_eq!(
            producer_code(E::ProducerFenced.code(), 12),
            E::InvalidProducerEpoch.code()
        );
        let concurrent = E::ConcurrentTransactions.code();
        assert_eq!(producer_code(concurrent, 11), E::NotEnoughReplicas.code());
        assert_eq!(producer_code(concurrent, 12), concurrent);
        assert_eq!(
            producer_code(E::NotCoordinator.code(), 12),
            E::NotEnoughReplicas.code()
        );
        let mapping = E::InvalidProducerIdMapping.code();
        assert_eq!(producer_code(mapping, 9), mapping);
    }
}
