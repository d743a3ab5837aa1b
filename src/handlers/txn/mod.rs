//! The transaction coordinator APIs. Like the group APIs, each file gets a
//! decoded request, routes it to the transactional id's coordinator shard
//! (`crate::txn`) and builds the response. A request the coordinator could
//! not take answers COORDINATOR_NOT_AVAILABLE, which clients retry.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod describe_transactions;
mod end_txn;
mod init_producer_id;
mod list_transactions;

use std::rc::Rc;

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::{ApiKey, RequestHeader};

use super::{decode, ApiSpec, Reply, RequestError};
use crate::services::Services;
use crate::txn::{Coordinator, TxnError, TxnMsg};

pub use add_offsets_to_txn::SPEC as ADD_OFFSETS_TO_TXN;
pub use add_partitions_to_txn::SPEC as ADD_PARTITIONS_TO_TXN;
pub use describe_transactions::SPEC as DESCRIBE_TRANSACTIONS;
pub use end_txn::SPEC as END_TXN;
pub use init_producer_id::init_producer_id;
pub use list_transactions::SPEC as LIST_TRANSACTIONS;

const SPECS: [ApiSpec; 5] = [
    ADD_PARTITIONS_TO_TXN,
    ADD_OFFSETS_TO_TXN,
    END_TXN,
    DESCRIBE_TRANSACTIONS,
    LIST_TRANSACTIONS,
];

/// Whether `key` is one of the transaction APIs served here.
pub fn serves(key: ApiKey) -> bool {
    SPECS.iter().any(|s| s.key == key)
}

/// Decodes, serves and encodes one transaction API request.
pub async fn handle(
    services: &Services,
    access: &super::access::Access,
    header: &RequestHeader,
    out: &Reply,
    buf: &mut Bytes,
) -> Result<Option<Vec<super::Piece>>, RequestError> {
    let (key, version) = (out.key, out.version);
    let txns = &services.txns;
    macro_rules! serve {
        ($module:ident) => {
            out.encoded(
                $module::handle(txns, access, header, version, decode(buf, key, version)?).await,
            )
        };
    }
    match key {
        ApiKey::AddPartitionsToTxn => serve!(add_partitions_to_txn),
        ApiKey::AddOffsetsToTxn => serve!(add_offsets_to_txn),
        ApiKey::EndTxn => serve!(end_txn),
        ApiKey::DescribeTransactions => serve!(describe_transactions),
        ApiKey::ListTransactions => serve!(list_transactions),
        _ => Err(RequestError::UnsupportedVersion {
            key,
            version,
            client: "unknown".into(),
        }),
    }
}

/// Sends a request to `transactional_id`'s coordinator and waits for its
/// answer; COORDINATOR_NOT_AVAILABLE if the coordinator dropped it.
async fn call<R>(
    txns: &Rc<Coordinator>,
    transactional_id: &str,
    msg: impl FnOnce(oneshot::Sender<Result<R, TxnError>>) -> TxnMsg,
) -> Result<R, TxnError> {
    let (tx, rx) = oneshot::channel();
    crate::txn::route(txns, transactional_id, msg(tx)).await;
    rx.await.unwrap_or(Err(TxnError::NotAvailable))
}
