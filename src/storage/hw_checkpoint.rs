//! The data dir's high watermark checkpoint (Kafka's
//! `replication-offset-checkpoint`): one file per shard holding the high
//! watermark of every replica that shard owns, so a restarted replica does
//! not expose, or forget, what the ISR had.
//!
//! One file per shard and not one per partition: each write is a temporary
//! file, an fsync, a rename and a directory fsync, and at 10,000 partitions
//! one file per partition made that 20,000 fsyncs a round. One per shard
//! and not one per data dir: a shard writes its own without asking the
//! others (thread-per-core; nothing shared).
//!
//! `replication-offset-checkpoint-<shard>`, text:
//!
//! ```text
//! 0
//! <entries>
//! <topic> <partition> <topic id> <high watermark>
//! ...
//! ```
//!
//! Topic names and ids hold no whitespace (`[a-zA-Z0-9._-]`, hex). The
//! topic id keeps a recreated topic from taking its predecessor's value.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checkpoint_file;
use super::io::{same_dir, sync_dir, write_atomic, TMP_SUFFIX};
use super::HIGH_WATERMARK_FILE;

/// Name of shard `n`'s file in the data dir is this, `-`, then `n`.
pub const HW_CHECKPOINT_PREFIX: &str = "replication-offset-checkpoint";

/// Shard `shard`'s checkpoint file in `data_dir`.
pub fn hw_checkpoint_path(data_dir: &Path, shard: usize) -> PathBuf {
    data_dir.join(format!("{HW_CHECKPOINT_PREFIX}-{shard}"))
}

/// One replica's line in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HwEntry {
    pub topic: Arc<str>,
    pub partition: i32,
    pub topic_id: Arc<str>,
    pub high_watermark: i64,
}

/// A log's per-partition `high-watermark` file (the layout before this
/// one), to remove once a shard checkpoint holds its value.
pub struct LegacyHwFile {
    pub(super) dir: PathBuf,
    /// The directory's inode when the log opened it: a partition deleted
    /// and recreated meanwhile keeps its own file.
    pub(super) dir_ino: u64,
}

/// Work for the blocking thread: replace one shard's checkpoint file with
/// `entries`, then drop the per-partition files it now covers.
pub struct HwCheckpoint {
    pub path: PathBuf,
    pub entries: Vec<HwEntry>,
    pub legacy: Vec<LegacyHwFile>,
}

impl HwCheckpoint {
    /// Writes the file (tmp + fsync + rename, then the directory fsync).
    /// Legacy files are removed only after that, and a failure to remove
    /// one is logged: the checkpoint's value wins over it at open.
    pub fn run(&self) -> io::Result<()> {
        write_checkpoint(&self.path, &self.entries)?;
        for legacy in &self.legacy {
            if let Err(e) = remove_legacy(legacy) {
                tracing::warn!(dir = %legacy.dir.display(), error = %e, "removing a per-partition high watermark file");
            }
        }
        Ok(())
    }
}

fn remove_legacy(legacy: &LegacyHwFile) -> io::Result<()> {
    if !same_dir(&legacy.dir, legacy.dir_ino)? {
        return Ok(());
    }
    match fs::remove_file(legacy.dir.join(HIGH_WATERMARK_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Replaces the checkpoint at `path` with `entries`, durably.
pub fn write_checkpoint(path: &Path, entries: &[HwEntry]) -> io::Result<()> {
    write_atomic(path, encode(entries).as_bytes())?;
    sync_dir(path.parent().expect("a checkpoint lives in the data dir"))
}

fn encode(entries: &[HwEntry]) -> String {
    checkpoint_file::encode(entries.iter().map(|e| {
        debug_assert!(
            !e.topic.contains(char::is_whitespace) && !e.topic_id.contains(char::is_whitespace)
        );
        debug_assert!(e.high_watermark >= 0);
        format!(
            "{} {} {} {}",
            e.topic, e.partition, e.topic_id, e.high_watermark
        )
    }))
}

/// The entries of a checkpoint's text; `None` if it is not one whole
/// (never written so: it is replaced atomically).
fn decode(text: &str) -> Option<Vec<HwEntry>> {
    let parse = |line: &str| {
        let mut fields = line.split_whitespace();
        let entry = HwEntry {
            topic: Arc::from(fields.next()?),
            partition: fields.next()?.parse().ok().filter(|p| *p >= 0)?,
            topic_id: Arc::from(fields.next()?),
            high_watermark: fields.next()?.parse().ok().filter(|hw| *hw >= 0)?,
        };
        fields.next().is_none().then_some(entry)
    };
    checkpoint_file::entry_lines(text)?
        .into_iter()
        .map(parse)
        .collect()
}

/// The high watermarks the data dir's checkpoints hold, read once at
/// start for the shards to open their logs with.
#[derive(Debug, Default)]
pub struct StoredHighWatermarks {
    /// (topic, partition, topic id) -> high watermark.
    entries: HashMap<(Arc<str>, i32, Arc<str>), i64>,
}

impl StoredHighWatermarks {
    /// The checkpointed high watermark of this incarnation of the partition.
    pub fn get(&self, topic: &str, partition: i32, topic_id: &str) -> Option<i64> {
        self.entries
            .get(&(Arc::from(topic), partition, Arc::from(topic_id)))
            .copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the lower of two values for one partition (two files from
    /// different shard counts): a lower high watermark is always safe.
    fn insert(&mut self, e: HwEntry) {
        let hw = self
            .entries
            .entry((e.topic, e.partition, e.topic_id))
            .or_insert(e.high_watermark);
        *hw = (*hw).min(e.high_watermark);
    }
}

/// Reads every shard checkpoint in `data_dir`. When the shard count
/// changed since they were written (a file of a shard that no longer
/// exists, or an entry in the file of a shard that no longer owns it), it
/// first rewrites them for `shards` shards, each entry in the file of
/// `owner(topic, partition)`: the new files durably before the old ones go.
/// Otherwise a shard's first round would leave its partitions' old lines in
/// another shard's file.
pub fn load_high_watermarks(
    data_dir: &Path,
    shards: usize,
    owner: impl Fn(&str, i32) -> usize,
) -> io::Result<StoredHighWatermarks> {
    assert!(shards > 0, "at least one shard");
    let mut stored = StoredHighWatermarks::default();
    let mut files = BTreeMap::new();
    let mut misplaced = false;
    for (shard, path) in checkpoint_files(data_dir)? {
        let text = fs::read_to_string(&path)?;
        let Some(entries) = decode(&text) else {
            tracing::warn!(path = %path.display(), "corrupt high watermark checkpoint; ignoring it");
            misplaced = true;
            files.insert(shard, path);
            continue;
        };
        misplaced |= shard >= shards
            || entries
                .iter()
                .any(|e| owner(&e.topic, e.partition) != shard);
        for entry in entries {
            stored.insert(entry);
        }
        files.insert(shard, path);
    }
    if misplaced {
        relayout(data_dir, shards, &owner, &stored, &files)?;
    }
    Ok(stored)
}

/// The checkpoint files in `data_dir` by shard; leftover temporary files
/// of an interrupted write are removed.
fn checkpoint_files(data_dir: &Path) -> io::Result<Vec<(usize, PathBuf)>> {
    let mut files = Vec::new();
    let prefix = format!("{HW_CHECKPOINT_PREFIX}-");
    for dirent in fs::read_dir(data_dir)? {
        let path = dirent?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(suffix) = name.strip_prefix(&prefix) else {
            continue;
        };
        if suffix.ends_with(TMP_SUFFIX) {
            fs::remove_file(&path)?;
        } else if let Ok(shard) = suffix.parse::<usize>() {
            files.push((shard, path));
        }
    }
    Ok(files)
}

fn relayout(
    data_dir: &Path,
    shards: usize,
    owner: &impl Fn(&str, i32) -> usize,
    stored: &StoredHighWatermarks,
    old: &BTreeMap<usize, PathBuf>,
) -> io::Result<()> {
    let mut all: Vec<HwEntry> = stored
        .entries
        .iter()
        .map(|((topic, partition, topic_id), hw)| HwEntry {
            topic: topic.clone(),
            partition: *partition,
            topic_id: topic_id.clone(),
            high_watermark: *hw,
        })
        .collect();
    all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    // Every value first goes to one file of a shard that does not exist,
    // so a crash while the shards' files are rewritten (one may lose
    // entries before another gains them) loses none: the next start reads
    // it, lays out again, and only then removes it.
    let spare = old
        .keys()
        .next_back()
        .map_or(shards, |&last| (last + 1).max(shards));
    let spare_path = hw_checkpoint_path(data_dir, spare);
    write_checkpoint(&spare_path, &all)?;
    let mut by_shard: Vec<Vec<HwEntry>> = vec![Vec::new(); shards];
    for entry in all {
        let shard = owner(&entry.topic, entry.partition);
        assert!(shard < shards, "owner {shard} of {shards} shards");
        by_shard[shard].push(entry);
    }
    for (shard, entries) in by_shard.into_iter().enumerate() {
        if entries.is_empty() && !old.contains_key(&shard) {
            continue;
        }
        write_atomic(
            &hw_checkpoint_path(data_dir, shard),
            encode(&entries).as_bytes(),
        )?;
    }
    sync_dir(data_dir)?;
    for path in old.range(shards..).map(|(_, path)| path) {
        fs::remove_file(path)?;
    }
    fs::remove_file(&spare_path)?;
    sync_dir(data_dir)?;
    tracing::info!(
        shards,
        entries = stored.len(),
        "high watermark checkpoints laid out for a new shard count"
    );
    Ok(())
}
