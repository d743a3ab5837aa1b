//! The floor's optional write to disk (`floor-broker --log-dir`): every
//! produced partition's bytes appended to a file of its own through the page
//! cache, before the answer. Nothing reads them back; they are there so the
//! floor pays what any broker that keeps its log in the page cache pays for
//! a write (the copy, new pages, write-back's locks), and nothing else.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// Files open at once; a partition past this is refused (the floor is for
/// the workloads' hundreds of partitions, not the many-partitions runs).
pub const FILES_MAX: usize = 4096;

pub struct Disk {
    dir: PathBuf,
    files: Mutex<Files>,
}

#[derive(Default)]
struct Files {
    /// Each topic's partitions' files, looked up by the request's own
    /// names (no key built per write).
    by_topic: HashMap<String, HashMap<i32, Arc<File>>>,
    opened: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("more than {FILES_MAX} partitions written")]
    TooManyFiles,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Disk {
    pub fn new(dir: PathBuf) -> Disk {
        Disk {
            dir,
            files: Mutex::default(),
        }
    }

    /// Appends `bytes` to the partition's file. The file is opened for
    /// appending and written through a shared handle, so a write that
    /// waits holds no other writer.
    pub fn append(&self, topic: &str, partition: i32, bytes: &[u8]) -> Result<(), DiskError> {
        let file = self.file(topic, partition)?;
        (&*file).write_all(bytes)?;
        Ok(())
    }

    fn file(&self, topic: &str, partition: i32) -> Result<Arc<File>, DiskError> {
        let mut files = lock(&self.files);
        if let Some(f) = files.by_topic.get(topic).and_then(|t| t.get(&partition)) {
            return Ok(f.clone());
        }
        if files.opened >= FILES_MAX {
            return Err(DiskError::TooManyFiles);
        }
        // The topic name is the client's: keep it out of the path.
        let path = self.dir.join(format!("{}-{partition}.log", files.opened));
        let f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        if files.opened == 0 {
            // What a run's log shows that the disk is in use.
            eprintln!(
                "floor: appending produced bytes, first to {}",
                path.display()
            );
        }
        files.opened += 1;
        let f = Arc::new(f);
        files
            .by_topic
            .entry(topic.to_string())
            .or_default()
            .insert(partition, f.clone());
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_partition_appends_to_its_own_file() {
        let dir = std::env::temp_dir().join(format!("floor-disk-test-{}", std::process::id()));
        // What an earlier run of this process id may have left.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let disk = Disk::new(dir.clone());
        disk.append("t", 0, b"abc").unwrap();
        disk.append("t", 1, b"xy").unwrap();
        disk.append("t", 0, b"de").unwrap();
        let mut sizes: Vec<u64> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        sizes.sort();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(sizes, [2, 5]);
    }
}
