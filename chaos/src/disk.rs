//! Small disks: a node's data dir on a tmpfs of its own that a fault can
//! fill to the last byte and give back.
//!
//! Every mount is in [`MOUNTED`] from mount to unmount; [`unmount_all`]
//! (run by each `Disk`'s Drop, the SIGINT/SIGTERM handler and the end of
//! `main`) takes down any left.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Mount points not yet unmounted.
static MOUNTED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The filler's write size; the last write takes what is left.
const CHUNK: usize = 256 << 10;

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Unmounts every tmpfs this process mounted. Safe to call twice.
pub fn unmount_all() {
    let mounts = match MOUNTED.lock() {
        Ok(mut m) => std::mem::take(&mut *m),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    for m in mounts {
        if let Err(e) = run(Command::new("umount").arg("--lazy").arg(&m)) {
            eprintln!("sluice-chaos: {e:#}");
        }
    }
}

/// One tmpfs; the node's data dir is `data` inside it.
pub struct Disk {
    mount: PathBuf,
    filler: PathBuf,
}

impl Disk {
    pub fn mount(at: &Path, mib: u64) -> Result<Disk> {
        std::fs::create_dir_all(at)?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at))
        .context("mount a tmpfs (needs root)")?;
        MOUNTED.lock().unwrap().insert(at.to_path_buf());
        Ok(Disk {
            mount: at.to_path_buf(),
            filler: at.join("filler"),
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.mount.join("data")
    }

    /// Writes a file until the filesystem is full; returns its size.
    pub fn fill(&self) -> Result<u64> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)?;
        let chunk = vec![0x5au8; CHUNK];
        let mut written = std::fs::metadata(&self.filler)?.len();
        let mut want = CHUNK;
        // Bounded: the filesystem is finite, and each round either writes
        // or halves the write size down to one byte.
        loop {
            match f.write(&chunk[..want]) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    if want == 1 {
                        break;
                    }
                    want /= 2;
                }
                Err(e) => return Err(e).context("fill the disk"),
            }
        }
        Ok(written)
    }

    /// Gives the space back.
    pub fn free(&self) -> Result<()> {
        match std::fs::remove_file(&self.filler) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if MOUNTED.lock().unwrap().remove(&self.mount) {
            if let Err(e) = run(Command::new("umount").arg("--lazy").arg(&self.mount)) {
                eprintln!("sluice-chaos: {e:#}");
            }
        }
    }
}
