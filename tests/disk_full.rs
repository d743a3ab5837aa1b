//! A full disk: the broker answers KAFKA_STORAGE_ERROR, keeps serving reads,
//! takes writes again once space returns, and no segment is corrupted (a
//! kill -9 and restart reads back exactly what was acknowledged). The data
//! dir sits on a small tmpfs this test mounts (the suite runs as root).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::raw::RawClient;
use common::*;

const KAFKA_STORAGE_ERROR: i16 = 56;

/// A tmpfs mounted for the test, unmounted however the test ends.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn batch(n: usize) -> bytes::Bytes {
    let value = vec![b'x'; 16 * 1024];
    let specs: Vec<sluice::record::build::RecordSpec<'_>> = (0..n)
        .map(|_| (None, Some(&value[..]), now_ms(), &[][..]))
        .collect();
    sluice::record::build::build_batch(0, &specs)
}

/// Writes past the space a small data dir has, then gives it room back.
#[test]
fn a_full_disk_refuses_writes_serves_reads_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&root.path().join("disk"), "4m");
    let data = mount.dir.join("data");
    let mut broker = Broker::start_in(&data, 1, &[]);
    create_topic(&broker.bootstrap(), "full", 1, &[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let mut acknowledged = 0i64;
    let mut refused = false;
    for _ in 0..1000 {
        let (code, base) = client.produce_batch("full", 0, batch(4));
        match code {
            0 => {
                assert_eq!(base, acknowledged, "offsets follow what was acknowledged");
                acknowledged += 4;
            }
            KAFKA_STORAGE_ERROR => {
                refused = true;
                break;
            }
            other => panic!("unexpected error {other}"),
        }
    }
    assert!(refused, "4 MiB filled up");
    assert!(acknowledged > 0);
    // Reads go on, and nothing of the refused write is visible.
    assert_eq!(client.log_end_offset("full", 0), acknowledged);
    let fetched = client.fetch_one("full", 0, 0);
    assert_eq!(fetched.responses[0].partitions[0].error_code, 0);
    // Space returns: writes go on where they stopped.
    mount.resize("16m");
    let (code, base) = client.produce_batch("full", 0, batch(4));
    assert_eq!((code, base), (0, acknowledged));
    acknowledged += 4;
    // A crash now: recovery finds every acknowledged batch intact.
    broker.kill9();
    broker.start_again();
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.log_end_offset("full", 0), acknowledged);
    let consumed = consume_all(
        &broker.bootstrap(),
        "full",
        1,
        acknowledged as usize,
        std::time::Duration::from_secs(60),
    );
    assert_eq!(consumed.len() as i64, acknowledged);
    broker.stop();
}
