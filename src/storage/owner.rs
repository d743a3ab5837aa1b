//! Which topic a partition directory belongs to: an empty file named
//! `owner-<topic id>` in it. A topic deleted and created again under the
//! same name while a broker was down has a new id, and that broker must
//! not take the old topic's records for the new one's (Kafka keeps the id
//! in `partition.metadata` for this, KIP-516). The mark is a name in the
//! directory listing that open makes anyway, so checking it costs nothing.

use std::fs::File;
use std::path::Path;

use super::recovery::Listing;
use super::StorageError;

const OWNER_PREFIX: &str = "owner-";

/// Checks that the directory `listing` lists is `owner`'s: marked so
/// already, or not marked at all (a new directory, or one from before the
/// mark), which it then marks. Another owner's mark is
/// [`StorageError::OtherOwner`].
pub(super) fn claim(dir: &Path, listing: &mut Listing, owner: &str) -> Result<(), StorageError> {
    let mark = format!("{OWNER_PREFIX}{owner}");
    if listing.has(&mark) {
        return Ok(());
    }
    if let Some(other) = listing.find(|name| name.starts_with(OWNER_PREFIX)) {
        return Err(StorageError::OtherOwner {
            dir: dir.to_path_buf(),
            found: other[OWNER_PREFIX.len()..].to_string(),
            expected: owner.to_string(),
        });
    }
    // Not synced: a crash that loses it leaves an unmarked directory,
    // which the next open marks again, as it does after a failed create (a
    // full disk must not keep the log from opening).
    match File::create(dir.join(&mark)) {
        Ok(_) => listing.insert(mark),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot mark the partition directory with its topic id; the next open tries again")
        }
    }
    Ok(())
}
