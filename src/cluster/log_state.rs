//! What a node knows at start about the partition logs it left, for its
//! ISRs' sake: an in-sync replica promised to hold every record it
//! acknowledged, and a log that may be missing some must not lead for them
//! (`MetadataRecord::LogsLost` takes the node out of its ISRs first).
//!
//! - A new data dir (no `meta.properties`): a replaced disk, or a first
//!   start; nothing is held.
//! - An unclean stop across a machine restart: the page cache went with
//!   the machine, so writes not yet flushed may be missing from the logs'
//!   tails (log recovery keeps what reached the disk). The machine's boot
//!   id, kept in the data dir, tells a restarted machine from a restarted
//!   process (after a kill -9 the page cache still holds every write).
//!   With `fsync_on_ack` every acknowledged record reached the disk first.

use std::path::Path;

use super::identity::DataDir;

/// The current boot's id, as Linux names it.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// The boot id of the machine the data dir was last used on.
pub const BOOT_ID_FILE: &str = "boot.id";
/// Present from a start that found the logs possibly short until the
/// broker has left its ISRs (`settled`): a start that fails before then
/// (the quorum out of reach) must not pass for an intact one next time,
/// when the data dir is no longer new and the boot id is this boot's.
pub const UNSETTLED_FILE: &str = "logs-lost.unsettled";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogState {
    /// Every record this node acknowledged is in its logs.
    Intact,
    /// A new data dir: it holds nothing.
    New,
    /// An unclean stop across a machine restart: unflushed records may
    /// be missing.
    MaybeShort,
}

impl LogState {
    /// Whether the node must leave its ISRs before it serves.
    pub fn lost_any(self) -> bool {
        self != LogState::Intact
    }
}

/// Decides the logs' state and records this boot's id for the next start.
pub fn assess(
    data_dir: &Path,
    dir: DataDir,
    clean_start: bool,
    fsync_on_ack: bool,
) -> std::io::Result<LogState> {
    let path = data_dir.join(BOOT_ID_FILE);
    let last = match std::fs::read_to_string(&path) {
        Ok(id) => Some(id.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let now = std::fs::read_to_string(BOOT_ID_PATH)
        .ok()
        .map(|id| id.trim().to_string());
    let unsettled = data_dir.join(UNSETTLED_FILE);
    let mut state = decide(dir, clean_start, fsync_on_ack, last.clone(), now.clone());
    if state == LogState::Intact && unsettled.exists() {
        state = LogState::MaybeShort;
    }
    if state.lost_any() {
        // Before the boot id moves on: the state must outlive this start.
        crate::metadata::write_atomically(&unsettled, b"")?;
    }
    if let Some(now) = &now {
        if last.as_ref() != Some(now) {
            crate::metadata::write_atomically(&path, now.as_bytes())?;
        }
    }
    Ok(state)
}

/// The broker left its ISRs (or had none to leave): later starts judge
/// the logs afresh.
pub fn settled(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data_dir.join(UNSETTLED_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn decide(
    dir: DataDir,
    clean_start: bool,
    fsync_on_ack: bool,
    last_boot: Option<String>,
    this_boot: Option<String>,
) -> LogState {
    if dir == DataDir::New {
        return LogState::New;
    }
    // Without a recorded boot (a data dir from before boot ids, or no
    // /proc) nothing tells a machine restart from a process restart.
    let rebooted = matches!((last_boot, this_boot), (Some(last), Some(now)) if last != now);
    if !clean_start && rebooted && !fsync_on_ack {
        LogState::MaybeShort
    } else {
        LogState::Intact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_dir_or_an_unclean_stop_across_a_reboot_may_have_lost_records() {
        let boot = |s: &str| Some(s.to_string());
        let known = DataDir::Known;
        assert_eq!(
            decide(DataDir::New, true, false, None, boot("a")),
            LogState::New
        );
        assert_eq!(
            decide(known, false, false, boot("a"), boot("b")),
            LogState::MaybeShort
        );
        // A process restart keeps the page cache; a clean stop flushed;
        // fsync_on_ack flushed every acknowledged record; an unknown boot.
        assert_eq!(
            decide(known, false, false, boot("a"), boot("a")),
            LogState::Intact
        );
        assert_eq!(
            decide(known, true, false, boot("a"), boot("b")),
            LogState::Intact
        );
        assert_eq!(
            decide(known, false, true, boot("a"), boot("b")),
            LogState::Intact
        );
        assert_eq!(
            decide(known, false, false, None, boot("b")),
            LogState::Intact
        );
    }

    #[test]
    fn a_start_that_did_not_settle_is_not_taken_for_an_intact_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            assess(dir.path(), DataDir::New, false, false).unwrap(),
            LogState::New
        );
        // Failed before leaving its ISRs: the dir is known now, the boot
        // the same, and still the logs may be short.
        assert_eq!(
            assess(dir.path(), DataDir::Known, false, false).unwrap(),
            LogState::MaybeShort
        );
        settled(dir.path()).unwrap();
        assert_eq!(
            assess(dir.path(), DataDir::Known, false, false).unwrap(),
            LogState::Intact
        );
        settled(dir.path()).unwrap();
    }

    #[test]
    fn the_boot_id_is_recorded_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        assess(dir.path(), DataDir::Known, true, false).unwrap();
        let recorded = std::fs::read_to_string(dir.path().join(BOOT_ID_FILE)).ok();
        let now = std::fs::read_to_string(BOOT_ID_PATH).ok();
        assert_eq!(
            recorded.map(|r| r.trim().to_string()),
            now.map(|n| n.trim().to_string())
        );
    }
}
