//! One transactional id's state and Kafka's transitions over it
//! (TransactionMetadata and the checks of TransactionCoordinator), as pure
//! functions: each looks at the current metadata and a request and decides
//! either an answer, or the next metadata, which the coordinator persists
//! in `__transaction_state` before it applies it and answers.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

use crate::shard::TopicPartition;

/// Kafka's TransactionState, with its ids in `__transaction_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// An expired id on its way out (written only as a tombstone here).
    Dead,
    /// In memory only, while the PrepareAbort that fences a producer's
    /// epoch is written (InitProducerId on an open transaction, timeouts).
    PrepareEpochFence,
}

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

impl TxnState {
    /// The state's id in a `__transaction_state` value.
    pub fn id(self) -> i8 {
        STATES.iter().position(|s| *s == self).expect("listed") as i8
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        STATES.get(usize::try_from(id).ok()?).copied()
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        STATES.into_iter().find(|s| s.name() == name)
    }

    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// No transaction open: a new one may start.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// Why a transactional request is refused. Kafka codes at the edge
/// ([`TxnError::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("another change of this transaction is in progress")]
    Concurrent,
    #[error("the producer epoch is not the current one")]
    Fenced,
    #[error("the producer id is not the one of this transactional id")]
    IdMapping,
    #[error("the transaction cannot do that in its current state")]
    InvalidState,
    #[error("the transaction timeout is out of range")]
    InvalidTimeout,
    #[error("the transaction would hold more partitions than allowed")]
    TooManyPartitions,
    #[error("the transactional id is unknown")]
    UnknownId,
    #[error("the coordinator cannot take more transactional ids")]
    Full,
    #[error("the coordinator is loading its state")]
    LoadInProgress,
    #[error("this shard does not coordinate the transactional id")]
    NotCoordinator,
    #[error("the coordinator is not available")]
    NotAvailable,
    #[error("writing the transaction state failed")]
    WriteFailed,
    /// Internal: the transition needs a fresh producer id first.
    #[error("a new producer id is needed")]
    NeedProducerId,
}

impl TxnError {
    /// The Kafka code; `fenced_known` says whether the request's version
    /// knows PRODUCER_FENCED (KIP-588); older ones get INVALID_PRODUCER_EPOCH.
    pub fn code(self, fenced_known: bool) -> i16 {
        let e = match self {
            TxnError::Concurrent => ResponseError::ConcurrentTransactions,
            TxnError::Fenced if fenced_known => ResponseError::ProducerFenced,
            TxnError::Fenced => ResponseError::InvalidProducerEpoch,
            TxnError::IdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::InvalidState => ResponseError::InvalidTxnState,
            TxnError::InvalidTimeout => ResponseError::InvalidTransactionTimeout,
            // No Kafka code names this limit of ours; the client gives up.
            TxnError::TooManyPartitions => ResponseError::InvalidRequest,
            TxnError::UnknownId => ResponseError::TransactionalIdNotFound,
            TxnError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
            TxnError::NotCoordinator => ResponseError::NotCoordinator,
            TxnError::Full | TxnError::NotAvailable | TxnError::NeedProducerId => {
                ResponseError::CoordinatorNotAvailable
            }
            TxnError::WriteFailed => ResponseError::CoordinatorNotAvailable,
        };
        e.code()
    }
}

/// What a coordinator knows of one transactional id; the persisted part of
/// Kafka's TransactionMetadata.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The id before the last rotation (epoch exhausted), so a retried
    /// InitProducerId naming it is not fenced (KIP-360); -1 if none.
    pub last_producer_id: i64,
    /// -1 until the first InitProducerId completes.
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId bump, so a retry of that
    /// call gets the same answer instead of being fenced; -1 if none.
    pub last_producer_epoch: i16,
    /// The producer id a transaction version 2 end with an exhausted epoch
    /// moves to once its markers are written; -1 if none.
    pub next_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open (or last) transaction started; -1 if none did.
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
}

/// Epochs at or past this take a new producer id instead of a bump
/// (Kafka's isEpochExhausted: the bump after it must still fit an i16).
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl TxnMetadata {
    /// A transactional id seen for the first time: its producer id, no
    /// epoch yet; InitProducerId then bumps it to 0.
    pub fn new(producer_id: i64, timeout_ms: i32, now: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            last_producer_id: -1,
            producer_epoch: -1,
            last_producer_epoch: -1,
            next_producer_id: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            txn_start_ms: -1,
            last_update_ms: now,
        }
    }

    /// Whether an InitProducerId needs a new producer id first.
    pub fn init_needs_new_id(&self, expected: Option<(i64, i16)>) -> bool {
        self.state.is_idle()
            && epoch_exhausted(self.producer_epoch)
            && expected.is_none_or(|(_, e)| e == self.producer_epoch)
    }

    /// Open past its timeout, so the coordinator aborts it.
    pub fn timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.txn_start_ms >= 0
            && now.saturating_sub(self.txn_start_ms) > i64::from(self.timeout_ms)
    }

    /// Idle long enough to be forgotten (Kafka's transactional id expiry).
    pub fn expired(&self, now: i64, expiration_ms: i64) -> bool {
        self.state.is_idle() && now.saturating_sub(self.last_update_ms) >= expiration_ms
    }

    /// The PrepareAbort that fences the current producer: the epoch goes up
    /// by one (unless it cannot), so the producer's next call is fenced and
    /// the markers carry the new epoch.
    pub fn fence_and_abort(&self, now: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.producer_epoch = next.producer_epoch.saturating_add(1);
        next.last_producer_epoch = -1;
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now;
        next
    }

    /// Under transaction version 2, the fencing PrepareAbort bumps the
    /// epoch once more, as every end does there (Kafka's
    /// prepareAbortOrCommit after prepareFenceProducerEpoch): the producer
    /// that left the transaction open is fenced for good, since no epoch it
    /// ever had answers as a retry of this end.
    pub fn bumped_at_end(mut self) -> TxnMetadata {
        assert_eq!(
            self.state,
            TxnState::PrepareAbort,
            "only a fencing abort bumps again"
        );
        self.last_producer_epoch = self.producer_epoch;
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self
    }

    /// The Complete* that follows a Prepare* once every marker is written
    /// (on the next producer id, at epoch 0, after an end that exhausted
    /// the epoch).
    pub fn complete(&self, now: i64) -> TxnMetadata {
        assert!(
            self.state.is_prepare(),
            "only a prepared transaction completes"
        );
        let mut next = self.clone();
        if self.next_producer_id >= 0 {
            next.last_producer_id = self.producer_id;
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
            next.next_producer_id = -1;
        }
        next.state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        next.partitions.clear();
        next.last_update_ms = now;
        next
    }
}

/// What InitProducerId decided.
#[derive(Debug, PartialEq)]
pub enum InitDecision {
    /// Persist `next` (Empty at a new epoch or id) and answer with its id
    /// and epoch.
    Bump(TxnMetadata),
    /// An open transaction is aborted first: persist `next` (PrepareAbort at
    /// a fenced epoch), write the abort markers, and answer
    /// CONCURRENT_TRANSACTIONS so the client retries (and bumps again).
    FenceAndAbort(TxnMetadata),
}

/// InitProducerId on an existing id (Kafka's prepareInitProducerIdTransit).
/// `expected` is v3+'s (producer id, epoch) when the client names one;
/// `fresh_id` a new producer id if [`TxnMetadata::init_needs_new_id`].
pub fn init(
    meta: &TxnMetadata,
    pending: bool,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    fresh_id: Option<i64>,
    now: i64,
) -> Result<InitDecision, TxnError> {
    if pending {
        return Err(TxnError::Concurrent);
    }
    if expected.is_some_and(|e| !valid_expected(meta, e)) {
        return Err(TxnError::Fenced);
    }
    match meta.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::Concurrent),
        TxnState::Ongoing => Ok(InitDecision::FenceAndAbort(meta.fence_and_abort(now))),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let mut next = meta.clone();
            if meta.init_needs_new_id(expected) {
                next.producer_id = fresh_id.ok_or(TxnError::NeedProducerId)?;
                next.last_producer_id = meta.producer_id;
                next.producer_epoch = 0;
                next.last_producer_epoch = match expected {
                    Some(_) => meta.producer_epoch,
                    None => -1,
                };
            } else {
                let bumped = meta.producer_epoch + 1;
                match expected {
                    None => (next.producer_epoch, next.last_producer_epoch) = (bumped, -1),
                    Some((_, e)) if meta.producer_epoch == -1 || e == meta.producer_epoch => {
                        (next.producer_epoch, next.last_producer_epoch) =
                            (bumped, meta.producer_epoch)
                    }
                    // A retry of the call that made the current epoch.
                    Some((_, e)) if e == meta.last_producer_epoch => {}
                    Some(_) => return Err(TxnError::Fenced),
                }
            }
            next.state = TxnState::Empty;
            next.partitions.clear();
            next.txn_start_ms = -1;
            next.timeout_ms = timeout_ms;
            next.last_update_ms = now;
            Ok(InitDecision::Bump(next))
        }
        TxnState::Dead | TxnState::PrepareEpochFence => Err(TxnError::Concurrent),
    }
}

/// Kafka's isValidProducerId: a named (id, epoch) is this id's current
/// producer, a just-created id, or the producer of the id before a rotation
/// retrying with its exhausted epoch.
fn valid_expected(meta: &TxnMetadata, (producer_id, epoch): (i64, i16)) -> bool {
    meta.producer_epoch == -1
        || producer_id == meta.producer_id
        || (producer_id == meta.last_producer_id && epoch_exhausted(epoch))
}

/// The producer checks shared by AddPartitionsToTxn, AddOffsetsToTxn and
/// verification.
fn check_producer(
    meta: &TxnMetadata,
    pending: bool,
    producer_id: i64,
    epoch: i16,
) -> Result<(), TxnError> {
    if meta.producer_id != producer_id {
        Err(TxnError::IdMapping)
    } else if meta.producer_epoch != epoch {
        Err(TxnError::Fenced)
    } else if pending || meta.state.is_prepare() {
        Err(TxnError::Concurrent)
    } else {
        Ok(())
    }
}

/// AddPartitionsToTxn (and AddOffsetsToTxn's one partition): `None` if
/// the transaction already holds them all, else the next metadata.
pub fn add_partitions(
    meta: &TxnMetadata,
    pending: bool,
    (producer_id, epoch): (i64, i16),
    partitions: &[TopicPartition],
    partitions_max: usize,
    now: i64,
) -> Result<Option<TxnMetadata>, TxnError> {
    check_producer(meta, pending, producer_id, epoch)?;
    match meta.state {
        TxnState::Ongoing if partitions.iter().all(|p| meta.partitions.contains(p)) => Ok(None),
        TxnState::Ongoing
        | TxnState::Empty
        | TxnState::CompleteCommit
        | TxnState::CompleteAbort => {
            let mut next = meta.clone();
            if meta.state != TxnState::Ongoing {
                next.partitions.clear();
                next.txn_start_ms = now;
            }
            next.partitions.extend(partitions.iter().cloned());
            if next.partitions.len() > partitions_max {
                return Err(TxnError::TooManyPartitions);
            }
            next.state = TxnState::Ongoing;
            next.last_update_ms = now;
            Ok(Some(next))
        }
        _ => Err(TxnError::InvalidState),
    }
}

/// AddPartitionsToTxn v4's verify_only: whether each partition is in the
/// open transaction of this producer.
pub fn verify_partitions(
    meta: &TxnMetadata,
    pending: bool,
    (producer_id, epoch): (i64, i16),
    partitions: &[TopicPartition],
) -> Result<Vec<bool>, TxnError> {
    check_producer(meta, pending, producer_id, epoch)?;
    Ok(partitions
        .iter()
        .map(|p| meta.state == TxnState::Ongoing && meta.partitions.contains(p))
        .collect())
}

/// EndTxn from a client: `None` answers success at once (a retry of a
/// completed end), else the Prepare* to persist before markers go out.
pub fn end(
    meta: &TxnMetadata,
    pending: bool,
    (producer_id, epoch): (i64, i16),
    commit: bool,
    now: i64,
) -> Result<Option<TxnMetadata>, TxnError> {
    if meta.producer_id != producer_id {
        return Err(TxnError::IdMapping);
    }
    if meta.producer_epoch != epoch {
        return Err(TxnError::Fenced);
    }
    if pending {
        return Err(TxnError::Concurrent);
    }
    // Whether a state ending with `committed` matches this request.
    let same = |committed: bool| committed == commit;
    match meta.state {
        TxnState::Ongoing => {
            let mut next = meta.clone();
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            next.last_update_ms = now;
            Ok(Some(next))
        }
        TxnState::CompleteCommit if same(true) => Ok(None),
        TxnState::CompleteAbort if same(false) => Ok(None),
        TxnState::PrepareCommit if same(true) => Err(TxnError::Concurrent),
        TxnState::PrepareAbort if same(false) => Err(TxnError::Concurrent),
        _ => Err(TxnError::InvalidState),
    }
}

/// Whether an end under transaction version 2 needs a new producer id
/// first: the bump would exhaust the epoch.
pub fn end_v2_needs_new_id(meta: &TxnMetadata) -> bool {
    epoch_exhausted(meta.producer_epoch)
}

/// EndTxn v5+ (transaction version 2, KIP-890's second part): every end
/// bumps the epoch, so the markers fence the transaction's stragglers and
/// the producer starts its next transaction at the new epoch (on
/// `fresh_id`, epoch 0, once the epoch is exhausted). An abort with
/// nothing open bumps too: it is how such a producer recovers from an
/// abortable error. `Ok(None)` answers a retry of an end already done
/// with the current producer id and epoch; else the Prepare* to persist.
/// Kafka's TransactionCoordinator.endTransaction rules.
pub fn end_v2(
    meta: &TxnMetadata,
    pending: bool,
    (producer_id, epoch): (i64, i16),
    commit: bool,
    fresh_id: Option<i64>,
    now: i64,
) -> Result<Option<TxnMetadata>, TxnError> {
    let current = producer_id == meta.producer_id && epoch == meta.producer_epoch;
    // The client still has the epoch from before the end that bumped it,
    // or the exhausted one from before the end that moved it to a new id.
    let retry_on_bump = producer_id == meta.producer_id
        && meta.producer_epoch > 0
        && epoch == meta.producer_epoch - 1;
    let retry_on_overflow = producer_id == meta.last_producer_id
        && meta.last_producer_id >= 0
        && epoch_exhausted(epoch)
        && meta.producer_epoch == 0;
    let retry = retry_on_bump || retry_on_overflow;
    if producer_id != meta.producer_id && !retry_on_overflow {
        return Err(TxnError::IdMapping);
    }
    if pending {
        return Err(TxnError::Concurrent);
    }
    let ends_as_asked = |state: TxnState| {
        matches!(
            (state, commit),
            (TxnState::PrepareCommit | TxnState::CompleteCommit, true)
                | (TxnState::PrepareAbort | TxnState::CompleteAbort, false)
        )
    };
    match meta.state {
        TxnState::Ongoing if current => prepare_v2(meta, commit, fresh_id, now).map(Some),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            if current && !commit =>
        {
            prepare_v2(meta, false, fresh_id, now).map(Some)
        }
        TxnState::CompleteCommit | TxnState::CompleteAbort if retry => {
            if ends_as_asked(meta.state) {
                Ok(None)
            } else {
                Err(TxnError::InvalidState)
            }
        }
        TxnState::PrepareCommit | TxnState::PrepareAbort if retry_on_bump => {
            if ends_as_asked(meta.state) {
                Err(TxnError::Concurrent)
            } else {
                Err(TxnError::InvalidState)
            }
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort if current => {
            Err(TxnError::InvalidState)
        }
        _ => Err(TxnError::Fenced),
    }
}

/// The Prepare* of a transaction version 2 end: the epoch bumped (or,
/// exhausted, the next producer id named), the old one kept for retries.
fn prepare_v2(
    meta: &TxnMetadata,
    commit: bool,
    fresh_id: Option<i64>,
    now: i64,
) -> Result<TxnMetadata, TxnError> {
    let mut next = meta.clone();
    next.state = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    if epoch_exhausted(meta.producer_epoch) {
        // The markers end the transaction at the last epoch of this id.
        next.next_producer_id = fresh_id.ok_or(TxnError::NeedProducerId)?;
        next.producer_epoch = i16::MAX;
    } else {
        next.producer_epoch = meta.producer_epoch + 1;
    }
    next.last_producer_epoch = meta.producer_epoch;
    if meta.state != TxnState::Ongoing {
        // An abort with nothing open: only the epoch moves.
        next.partitions.clear();
        next.txn_start_ms = now;
    }
    next.last_update_ms = now;
    Ok(next)
}

impl TxnMetadata {
    /// The producer id and epoch a transaction version 2 end hands the
    /// client: those its next transaction runs at.
    pub fn next_producer(&self) -> (i64, i16) {
        if self.next_producer_id >= 0 {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from("t"),
            partition: p,
        }
    }

    fn ready(epoch: i16) -> TxnMetadata {
        let mut m = TxnMetadata::new(7, 1000, 0);
        m.producer_epoch = epoch;
        m
    }

    fn bumped(d: Result<InitDecision, TxnError>) -> TxnMetadata {
        match d {
            Ok(InitDecision::Bump(m)) => m,
            other => panic!("expected a bump, got {other:?}"),
        }
    }

    #[test]
    fn state_ids_and_names_are_kafkas() {
        assert_eq!(TxnState::Empty.id(), 0);
        assert_eq!(TxnState::CompleteAbort.id(), 5);
        assert_eq!(TxnState::PrepareEpochFence.id(), 7);
        for s in STATES {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_id(-1), None);
    }

    #[test]
    fn init_bumps_the_epoch_from_a_new_id() {
        let m = TxnMetadata::new(7, 1000, 0);
        let first = bumped(init(&m, false, 500, None, None, 1));
        assert_eq!((first.producer_id, first.producer_epoch), (7, 0));
        assert_eq!(first.timeout_ms, 500);
        let second = bumped(init(&first, false, 500, None, None, 2));
        assert_eq!(second.producer_epoch, 1);
        assert_eq!(
            init(&second, true, 500, None, None, 3),
            Err(TxnError::Concurrent)
        );
    }

    #[test]
    fn init_with_an_exhausted_epoch_rotates_the_producer_id() {
        let m = ready(i16::MAX - 1);
        assert!(m.init_needs_new_id(None));
        assert_eq!(
            init(&m, false, 500, None, None, 1),
            Err(TxnError::NeedProducerId)
        );
        let next = bumped(init(&m, false, 500, None, Some(99), 1));
        assert_eq!((next.producer_id, next.producer_epoch), (99, 0));
        assert_eq!(next.last_producer_id, 7);
    }

    #[test]
    fn init_checks_the_expected_producer_kip_360() {
        let m = ready(3);
        // The current producer bumps; its retry with the old epoch is
        // answered again; anyone else is fenced.
        let next = bumped(init(&m, false, 500, Some((7, 3)), None, 1));
        assert_eq!((next.producer_epoch, next.last_producer_epoch), (4, 3));
        let retry = bumped(init(&next, false, 500, Some((7, 3)), None, 2));
        assert_eq!(retry.producer_epoch, 4);
        assert_eq!(
            init(&next, false, 500, Some((7, 1)), None, 2),
            Err(TxnError::Fenced)
        );
        assert_eq!(
            init(&next, false, 500, Some((8, 4)), None, 2),
            Err(TxnError::Fenced)
        );
    }

    #[test]
    fn init_on_an_open_transaction_fences_and_aborts_it() {
        let m = ready(2);
        let open = add_partitions(&m, false, (7, 2), &[tp(0)], 10, 5)
            .unwrap()
            .unwrap();
        match init(&open, false, 500, None, None, 6) {
            Ok(InitDecision::FenceAndAbort(next)) => {
                assert_eq!(next.state, TxnState::PrepareAbort);
                assert_eq!(next.producer_epoch, 3);
                assert_eq!(next.partitions.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        let mut preparing = open.clone();
        preparing.state = TxnState::PrepareCommit;
        assert_eq!(
            init(&preparing, false, 500, None, None, 6),
            Err(TxnError::Concurrent)
        );
    }

    #[test]
    fn add_partitions_starts_and_grows_a_transaction() {
        let m = ready(0);
        assert_eq!(
            add_partitions(&m, false, (8, 0), &[tp(0)], 10, 5),
            Err(TxnError::IdMapping)
        );
        assert_eq!(
            add_partitions(&m, false, (7, 1), &[tp(0)], 10, 5),
            Err(TxnError::Fenced)
        );
        let open = add_partitions(&m, false, (7, 0), &[tp(0)], 10, 5)
            .unwrap()
            .unwrap();
        assert_eq!((open.state, open.txn_start_ms), (TxnState::Ongoing, 5));
        assert_eq!(
            add_partitions(&open, false, (7, 0), &[tp(0)], 10, 6),
            Ok(None)
        );
        let grown = add_partitions(&open, false, (7, 0), &[tp(1)], 10, 6)
            .unwrap()
            .unwrap();
        assert_eq!((grown.partitions.len(), grown.txn_start_ms), (2, 5));
        let many: Vec<_> = (0..11).map(tp).collect();
        assert_eq!(
            add_partitions(&m, false, (7, 0), &many, 10, 5),
            Err(TxnError::TooManyPartitions)
        );
        assert_eq!(
            verify_partitions(&grown, false, (7, 0), &[tp(1), tp(2)]),
            Ok(vec![true, false])
        );
    }

    #[test]
    fn end_prepares_then_completes_and_retries_answer_as_kafka() {
        let open = add_partitions(&ready(0), false, (7, 0), &[tp(0)], 10, 5)
            .unwrap()
            .unwrap();
        let prepared = end(&open, false, (7, 0), true, 6).unwrap().unwrap();
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(
            end(&prepared, false, (7, 0), true, 7),
            Err(TxnError::Concurrent)
        );
        assert_eq!(
            end(&prepared, false, (7, 0), false, 7),
            Err(TxnError::InvalidState)
        );
        let done = prepared.complete(8);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(end(&done, false, (7, 0), true, 9), Ok(None));
        assert_eq!(
            end(&done, false, (7, 0), false, 9),
            Err(TxnError::InvalidState)
        );
        assert_eq!(
            end(&ready(0), false, (7, 0), true, 9),
            Err(TxnError::InvalidState)
        );
        assert_eq!(end(&open, false, (7, 1), true, 9), Err(TxnError::Fenced));
        // A new transaction after a completed one starts afresh.
        let again = add_partitions(&done, false, (7, 0), &[tp(3)], 10, 10)
            .unwrap()
            .unwrap();
        assert_eq!((again.partitions.len(), again.txn_start_ms), (1, 10));
    }

    #[test]
    fn v2_ends_bump_the_epoch_and_answer_retries_as_kafka() {
        let open = add_partitions(&ready(4), false, (7, 4), &[tp(0)], 10, 5)
            .unwrap()
            .unwrap();
        let prepared = end_v2(&open, false, (7, 4), true, None, 6)
            .unwrap()
            .unwrap();
        assert_eq!(
            (prepared.state, prepared.producer_epoch),
            (TxnState::PrepareCommit, 5)
        );
        assert_eq!(prepared.next_producer(), (7, 5));
        assert_eq!(prepared.partitions.len(), 1, "the markers go there");
        // Retried while the markers are written; the other result is refused.
        assert_eq!(
            end_v2(&prepared, false, (7, 4), true, None, 7),
            Err(TxnError::Concurrent)
        );
        assert_eq!(
            end_v2(&prepared, false, (7, 4), false, None, 7),
            Err(TxnError::InvalidState)
        );
        let done = prepared.complete(8);
        // A retry with the epoch from before the bump is answered.
        assert_eq!(end_v2(&done, false, (7, 4), true, None, 9), Ok(None));
        assert_eq!(
            end_v2(&done, false, (7, 4), false, None, 9),
            Err(TxnError::InvalidState)
        );
        assert_eq!(
            end_v2(&done, false, (7, 5), true, None, 9),
            Err(TxnError::InvalidState),
            "nothing open to commit"
        );
        assert_eq!(
            end_v2(&done, false, (7, 3), true, None, 9),
            Err(TxnError::Fenced)
        );
        assert_eq!(
            end_v2(&done, false, (8, 5), true, None, 9),
            Err(TxnError::IdMapping)
        );
        // An abort with nothing open bumps the epoch, with no markers.
        let bumped = end_v2(&done, false, (7, 5), false, None, 9)
            .unwrap()
            .unwrap();
        assert_eq!(
            (bumped.state, bumped.producer_epoch),
            (TxnState::PrepareAbort, 6)
        );
        assert!(bumped.partitions.is_empty());
        assert_eq!(
            end_v2(&ready(4), false, (7, 4), true, None, 9),
            Err(TxnError::InvalidState)
        );
    }

    #[test]
    fn v2_end_with_an_exhausted_epoch_moves_to_a_new_producer_id() {
        let open = add_partitions(
            &ready(i16::MAX - 1),
            false,
            (7, i16::MAX - 1),
            &[tp(0)],
            10,
            5,
        )
        .unwrap()
        .unwrap();
        assert!(end_v2_needs_new_id(&open));
        assert_eq!(
            end_v2(&open, false, (7, i16::MAX - 1), true, None, 6),
            Err(TxnError::NeedProducerId)
        );
        let prepared = end_v2(&open, false, (7, i16::MAX - 1), true, Some(99), 6)
            .unwrap()
            .unwrap();
        // The markers end it at the id's last epoch; the client moves on.
        assert_eq!(
            (prepared.producer_id, prepared.producer_epoch),
            (7, i16::MAX)
        );
        assert_eq!(prepared.next_producer(), (99, 0));
        let done = prepared.complete(7);
        assert_eq!((done.producer_id, done.producer_epoch), (99, 0));
        assert_eq!((done.last_producer_id, done.next_producer_id), (7, -1));
        // The client's retry with the old id and epoch is answered.
        assert_eq!(
            end_v2(&done, false, (7, i16::MAX - 1), true, None, 8),
            Ok(None)
        );
    }

    #[test]
    fn a_v2_fencing_abort_leaves_no_epoch_of_the_producer_a_retry() {
        let open = add_partitions(&ready(4), false, (7, 4), &[tp(0)], 10, 5)
            .unwrap()
            .unwrap();
        let fenced = open.fence_and_abort(6).bumped_at_end();
        assert_eq!(fenced.producer_epoch, 6);
        let done = fenced.complete(7);
        // The producer still at epoch 4 is fenced, not answered as a retry.
        assert_eq!(
            end_v2(&done, false, (7, 4), false, None, 8),
            Err(TxnError::Fenced)
        );
        assert_eq!(
            end_v2(&done, false, (7, 4), true, None, 8),
            Err(TxnError::Fenced)
        );
    }

    #[test]
    fn timeouts_fence_and_expiry_waits_for_idle() {
        let open = add_partitions(&ready(0), false, (7, 0), &[tp(0)], 10, 100)
            .unwrap()
            .unwrap();
        assert!(!open.timed_out(1100));
        assert!(open.timed_out(1101));
        let aborting = open.fence_and_abort(1101);
        assert_eq!(
            (aborting.state, aborting.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(
            end(&aborting, false, (7, 0), true, 1102),
            Err(TxnError::Fenced)
        );
        assert!(!open.expired(i64::MAX, 10));
        assert!(aborting.complete(1200).expired(1210, 10));
        assert_eq!(TxnError::Fenced.code(true), 90);
        assert_eq!(TxnError::Fenced.code(false), 47);
    }
}
