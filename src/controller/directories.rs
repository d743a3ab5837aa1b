//! Voters' directory ids (KIP-853): what keeps a voter whose metadata log
//! was lost (a replaced disk, a wiped data dir) from electing a leader
//! that lacks committed entries.
//!
//! Raft counts a vote as a promise about the log: a voter grants it only
//! to a candidate whose log is at least as long as its own. A voter that
//! lost its log keeps its node id but not what it acknowledged, so its
//! vote could complete a majority for a candidate missing an entry that
//! only the lost log and the leader held. So each metadata log directory
//! has an id of its own, made with the directory (`directory.id` beside
//! the log: a lost log takes its id with it), and every peer says its id
//! in its hello. The active controller writes each voter's id to the log
//! (`MetadataRecord::VoterDirectory`), and a candidate asks each voter's
//! vote *as that directory* (`Request::VoteAs`). A node refuses a vote
//! asked of a directory that is not its own: it is the node, but not the
//! log that promised.
//!
//! The node with a new directory takes entries as any follower does, and
//! once it holds every entry the active controller has, the controller
//! writes its new id (`pass`): from then on it votes again. Until a
//! voter's first id is written (the first seconds of a new cluster, or of
//! a cluster upgraded to this: ids are written only once every member of
//! the quorum has said its own, since an older node could not read the
//! record), its votes are asked without a directory and nothing guards
//! them, as in Kafka's static quorums.

use std::collections::BTreeMap;
use std::path::Path;

use uuid::Uuid;

use super::driver::Core;
use super::records::MetadataRecord;
use super::types::{read_checked_file, write_checked_file};

/// The directory id's file, in the metadata log's directory.
const DIRECTORY_ID_FILE: &str = "directory.id";

/// The metadata log directory's id: the one it has, or a new one for a
/// directory that has none (new, wiped, or from before directory ids).
pub fn open_or_create(dir: &Path) -> std::io::Result<Uuid> {
    let path = dir.join(DIRECTORY_ID_FILE);
    if let Some(id) = read_checked_file::<Uuid>(&path)? {
        assert!(!id.is_nil(), "a written directory id is never nil");
        return Ok(id);
    }
    let id = Uuid::new_v4();
    write_checked_file(&path, &id)?;
    tracing::info!(directory = %dir.display(), %id, "new metadata log directory id");
    Ok(id)
}

/// Why a vote asked of directory `asked` is refused here, if it is.
pub fn refuse_vote(own: Uuid, asked: Uuid) -> Option<String> {
    (asked != own).then(|| {
        format!(
            "a vote was asked of directory {asked}, and this node's metadata log is directory {own}: \
             the log that promised it was lost, so this node votes again only once the active \
             controller has seen it catch up"
        )
    })
}

impl Core {
    /// Remembers the directory id and the record level peer `node`'s
    /// hello gave.
    pub fn peer_hello(&self, node: i32, hello: &super::rpc::Hello) {
        self.levels_seen
            .lock()
            .expect("the levels lock is never poisoned")
            .insert(node, hello.record_level);
        if hello.directory_id.is_nil() {
            return; // a peer from before directory ids
        }
        let mut seen = self
            .directories_seen
            .lock()
            .expect("the directories lock is never poisoned");
        seen.insert(node, hello.directory_id);
    }

    /// The directory id voter `node` is asked for its vote as: the one the
    /// log holds for it, if any yet.
    pub fn voter_directory(&self, node: i32) -> Option<Uuid> {
        let (_, image) = self.image();
        image.voter_directories.get(&node).copied()
    }
}

/// On the active controller: whether every member of the quorum (voters
/// and learners) reads records of `level` (`records::RECORD_LEVEL`): its
/// hello said that level or a newer one. For level 1 (`VoterDirectory`,
/// `LogsLost`), which came with directory ids, a member whose directory id
/// the log holds counts too (a voter this controller has not heard since
/// it leads, down maybe). A member that could not read a record could not
/// take an entry holding one.
pub fn every_member_reads(core: &Core, level: u16) -> bool {
    let (_, image) = core.image();
    let levels = core
        .levels_seen
        .lock()
        .expect("the levels lock is never poisoned");
    let metrics = core.raft().metrics();
    let quorum = super::learner::quorum(&metrics.borrow());
    let mut members = quorum.voters.iter().chain(quorum.learners.keys());
    members.all(|m| {
        *m == core.node_id
            || levels.get(m).is_some_and(|l| *l >= level)
            || (level <= 1 && image.voter_directories.contains_key(m))
    })
}

/// On the active controller: writes the directory id of every voter
/// whose id the log lacks, and the new id of a voter whose directory
/// changed once it holds every entry (so it may vote again).
pub async fn pass(core: &Core) {
    if !every_member_reads(core, 1) {
        return;
    }
    let (_, image) = core.image();
    let mut seen: BTreeMap<i32, Uuid> = core
        .directories_seen
        .lock()
        .expect("the directories lock is never poisoned")
        .clone();
    seen.insert(core.node_id, core.directory_id);
    let writes: Vec<(i32, Uuid)> = {
        let metrics = core.raft().metrics();
        let metrics = metrics.borrow();
        super::learner::quorum(&metrics)
            .voters
            .into_iter()
            .filter_map(|node| {
                let id = *seen.get(&node)?;
                match image.voter_directories.get(&node) {
                    None => Some((node, id)),
                    Some(recorded) if *recorded == id => None,
                    // The leader holds every entry; another voter must
                    // have matched them all first.
                    Some(_) if node != core.node_id && super::learner::behind(&metrics, node) => {
                        None
                    }
                    Some(_) => Some((node, id)),
                }
            })
            .collect()
    };
    for (node, directory_id) in writes {
        let replaced = image.voter_directories.get(&node).copied();
        let record = MetadataRecord::VoterDirectory { node, directory_id };
        match core.propose_as_leader(record).await {
            Ok(_) => match replaced {
                Some(old) => {
                    tracing::warn!(node, old = %old, new = %directory_id, "voter's metadata log was replaced; it caught up and votes again as its new directory")
                }
                None => tracing::info!(node, %directory_id, "voter's directory id written"),
            },
            Err(e) => tracing::debug!(node, error = %e, "voter's directory id not written"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_keeps_its_id_and_a_new_one_gets_another() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_or_create(dir.path()).unwrap();
        assert_eq!(open_or_create(dir.path()).unwrap(), first);
        let wiped = tempfile::tempdir().unwrap();
        assert_ne!(open_or_create(wiped.path()).unwrap(), first);
        assert!(refuse_vote(first, first).is_none());
        assert!(refuse_vote(first, Uuid::new_v4()).is_some());
    }
}
