//! The Raft state machine: the cluster image, what has been applied to it,
//! and its snapshots.
//!
//! A snapshot is one checked file, `snapshot` (`crc32c | postcard(meta,
//! image)`), replaced by write-fsync-rename, so a crash leaves the old or
//! the new one. On open the image starts from it; openraft then applies the
//! committed entries after it again. Every apply publishes the new image
//! on a watch channel, which is how the rest of the node sees it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::image::ClusterImage;
use super::records::{self, RecordOutcome};
use super::types::{
    read_checked_file, write_checked_file, Applied, Entry, LogId, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig,
};

const SNAPSHOT_FILE: &str = "snapshot";

/// The latest applied image, with the index of the last entry in it.
pub type Published = (u64, Arc<ClusterImage>);

#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    /// `postcard(ClusterImage)`, as it is sent to a lagging follower.
    data: Vec<u8>,
}

/// The state machine handed to openraft; clones share one.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Machine>>,
}

struct Machine {
    dir: PathBuf,
    /// Shared with readers of `published`; changed by `Arc::make_mut`,
    /// so a reader's snapshot never changes under it.
    image: Arc<ClusterImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    current: Option<StoredSnapshot>,
    /// Makes snapshot ids unique within this process.
    built: u64,
    published: watch::Sender<Published>,
}

impl StateMachine {
    /// Opens the state machine from its last snapshot in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<(StateMachine, watch::Receiver<Published>)> {
        let current: Option<StoredSnapshot> = read_checked_file(&dir.join(SNAPSHOT_FILE))?;
        let (image, last_applied, membership) = match &current {
            Some(s) => (
                decode_image(&s.data)?,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (ClusterImage::default(), None, StoredMembership::default()),
        };
        let image = Arc::new(image);
        let index = last_applied.map_or(0, |l| l.index);
        let (published, receiver) = watch::channel((index, image.clone()));
        let machine = Machine {
            dir: dir.to_path_buf(),
            image,
            last_applied,
            membership,
            current,
            built: 0,
            published,
        };
        let inner = Arc::new(Mutex::new(machine));
        Ok((StateMachine { inner }, receiver))
    }

    fn machine(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.inner
            .lock()
            .expect("the state machine lock is never poisoned")
    }
}

fn decode_image(data: &[u8]) -> std::io::Result<ClusterImage> {
    super::image::decode(data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl Machine {
    fn apply_entry(&mut self, entry: &Entry) -> Applied {
        if let Some(last) = self.last_applied {
            assert!(
                entry.log_id.index == last.index + 1,
                "applied {} after {last}",
                entry.log_id
            );
        }
        self.last_applied = Some(entry.log_id);
        match &entry.payload {
            EntryPayload::Blank => Ok(RecordOutcome::Unchanged),
            EntryPayload::Normal(record) => {
                let result = records::apply(Arc::make_mut(&mut self.image), record);
                if let Err(e) = &result {
                    tracing::debug!(index = entry.log_id.index, error = %e, "record refused");
                }
                result
            }
            EntryPayload::Membership(m) => {
                self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                Ok(RecordOutcome::Unchanged)
            }
        }
    }

    fn publish(&self) {
        let index = self.last_applied.map_or(0, |l| l.index);
        self.published.send_replace((index, self.image.clone()));
    }

    /// Makes `snapshot` the current one unless a newer one already is.
    fn keep_snapshot(&mut self, snapshot: StoredSnapshot) -> std::io::Result<()> {
        let newer = self
            .current
            .as_ref()
            .is_none_or(|c| snapshot.meta.last_log_id >= c.meta.last_log_id);
        if newer {
            write_checked_file(&self.dir.join(SNAPSHOT_FILE), &snapshot)?;
            self.current = Some(snapshot);
        }
        Ok(())
    }
}

fn to_snapshot(stored: StoredSnapshot) -> Snapshot<TypeConfig> {
    Snapshot {
        meta: stored.meta,
        snapshot: Box::new(Cursor::new(stored.data)),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (image, last_log_id, last_membership, seq) = {
            let mut m = self.machine();
            m.built += 1;
            (
                m.image.clone(),
                m.last_applied,
                m.membership.clone(),
                m.built,
            )
        };
        // Encoded outside the lock; the image is an immutable snapshot.
        let data = postcard::to_allocvec(image.as_ref()).expect("images always encode");
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("empty-{seq}"),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id,
            },
            data,
        };
        self.machine()
            .keep_snapshot(stored.clone())
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
        Ok(to_snapshot(stored))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let m = self.machine();
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut m = self.machine();
        let results = entries.into_iter().map(|e| m.apply_entry(&e)).collect();
        m.publish();
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let failed = |e: &std::io::Error| StorageIOError::read_snapshot(Some(meta.signature()), e);
        let image = decode_image(&data).map_err(|e| failed(&e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let mut m = self.machine();
        m.keep_snapshot(stored).map_err(|e| failed(&e))?;
        m.image = Arc::new(image);
        m.last_applied = meta.last_log_id;
        m.membership = meta.last_membership.clone();
        m.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.machine().current.clone().map(to_snapshot))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::controller::records::MetadataRecord;

    fn entry(index: u64, record: MetadataRecord) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(record),
        }
    }

    fn register(id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            id,
            incarnation: uuid::Uuid::from_u128(7),
            endpoints: vec![],
            rack: None,
        }
    }

    #[test]
    fn applies_publishes_and_restarts_from_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (mut sm, mut images) = StateMachine::open(dir.path()).unwrap();
            let entries = vec![
                entry(0, register(1)),
                entry(1, MetadataRecord::FenceBroker { id: 9 }),
            ];
            let results = sm.apply(entries).await.unwrap();
            assert_eq!(results[0], Ok(RecordOutcome::Applied));
            assert!(results[1].is_err(), "a refusal is a result");
            let (index, image) = images.borrow_and_update().clone();
            assert_eq!(index, 1);
            assert!(image.brokers.contains_key(&1));
            let built = sm.build_snapshot().await.unwrap();
            assert_eq!(built.meta.last_log_id.unwrap().index, 1);
            sm.apply(vec![entry(2, register(2))]).await.unwrap();
        });
        // The snapshot covers index 1 only; openraft re-applies the rest.
        let (mut sm, images) = StateMachine::open(dir.path()).unwrap();
        let (index, image) = images.borrow().clone();
        assert_eq!(index, 1);
        assert_eq!(image.brokers.len(), 1);
        runtime.block_on(async {
            let (applied, _) = sm.applied_state().await.unwrap();
            assert_eq!(applied.unwrap().index, 1);
            assert!(sm.get_current_snapshot().await.unwrap().is_some());
        });
    }
}
