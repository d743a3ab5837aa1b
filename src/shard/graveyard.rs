//! Where deleted partitions' directories go: renamed away at once (a
//! topic created again under the name starts from an empty directory),
//! then removed in the background; what a stop leaves, the next start
//! removes.

use std::path::{Path, PathBuf};

/// Ends the name a deleted partition's directory is renamed to, until the
/// background removes it.
const GRAVEYARD_SUFFIX: &str = ".deleted";

/// Removes deleted partitions' renamed-away directories, one at a time on
/// the blocking thread, so a big topic's deletion does not queue thousands
/// of removals at once.
pub(super) async fn remove_all(dirs: Vec<PathBuf>) {
    for dir in dirs {
        crate::runtime::blocking(move || remove_graveyard(&dir)).await;
    }
}

fn remove_graveyard(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing a deleted partition");
    }
}

/// Where a deleted partition's directory goes: its name with the topic id
/// and [`GRAVEYARD_SUFFIX`] appended (not an extension replaced: a topic
/// name may hold dots, and its partitions must not meet at one name).
fn graveyard_of(dir: &Path, topic_id: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .expect("a partition directory")
        .to_os_string();
    name.push(format!(".{topic_id}{GRAVEYARD_SUFFIX}"));
    dir.with_file_name(name)
}

/// Renames partition directory `dir` (of topic `topic_id`) to its
/// graveyard, which it returns; a failure is logged and gives `None`.
pub(super) fn into_graveyard(dir: &Path, topic_id: &str) -> Option<PathBuf> {
    let graveyard = graveyard_of(dir, topic_id);
    match std::fs::rename(dir, &graveyard) {
        Ok(()) => Some(graveyard),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot rename a partition directory away; it stays");
            None
        }
    }
}

/// Renames away, into graveyards, the partition directories of `data_dir`
/// that `topics` does not place on this node: a replica reassigned
/// elsewhere, or a topic deleted, while the node was down (Kafka's stray
/// replicas). Run at start in a cluster, with the image the node caught up
/// to, before any log opens, and before [`remove_leftover_graveyards`],
/// which then removes them. Returns how many went.
pub fn bury_stray_partitions(data_dir: &Path, topics: &crate::metadata::Topics) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return 0;
    };
    let mut buried = 0;
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((topic, partition)) = partition_of(&name) else {
            continue;
        };
        if topics.has_partition(topic, partition) && topics.hosts(topic, partition) {
            continue;
        }
        let dir = entry.path();
        if into_graveyard(&dir, "stray").is_some() {
            tracing::info!(dir = %dir.display(), "a partition this node no longer holds: removing it");
            buried += 1;
        }
    }
    buried
}

/// (topic, partition) of a partition directory's name, `<topic>-<n>`.
fn partition_of(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    let partition: i32 = partition.parse().ok().filter(|p| *p >= 0)?;
    crate::metadata::valid_topic_name(topic).then_some((topic, partition))
}

/// Renames `dir`, a partition directory of the deleted topic `topic_id`,
/// into its graveyard and removes it in the background.
pub(super) fn bury(dir: &Path, topic_id: &str) {
    if let Some(graveyard) = into_graveyard(dir, topic_id) {
        crate::runtime::spawn_local(remove_all(vec![graveyard])).detach();
    }
}

/// Removes, on a thread of its own, the deleted partitions' directories a
/// stop left before the background had removed them (it removes one at a
/// time, so a stop soon after a big topic's deletion leaves many).
pub fn remove_leftover_graveyards(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    let graveyards: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(GRAVEYARD_SUFFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    if graveyards.is_empty() {
        return;
    }
    tracing::info!(
        dirs = graveyards.len(),
        "removing deleted partitions left by the last stop"
    );
    let spawned = std::thread::Builder::new()
        .name("sluice-graveyards".into())
        .spawn(move || graveyards.iter().for_each(|dir| remove_graveyard(dir)));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start removing deleted partitions; the next start tries again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partition_directories_name_a_partition() {
        assert_eq!(partition_of("orders-3"), Some(("orders", 3)));
        assert_eq!(partition_of("my-topic-0"), Some(("my-topic", 0)));
        assert_eq!(
            partition_of("__consumer_offsets-49"),
            Some(("__consumer_offsets", 49))
        );
        for other in [
            "__cluster_metadata",
            "orders-3.abc.deleted",
            "orders-x",
            "-1",
            "replication-offset-checkpoint",
        ] {
            assert_eq!(partition_of(other), None, "{other}");
        }
    }
}
