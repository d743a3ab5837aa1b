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
pub(super) fn graveyard_of(dir: &Path, topic_id: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .expect("a partition directory")
        .to_os_string();
    name.push(format!(".{topic_id}{GRAVEYARD_SUFFIX}"));
    dir.with_file_name(name)
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
