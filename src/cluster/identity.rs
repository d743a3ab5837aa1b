//! Who this node is: the cluster id and node id kept in the data dir
//! (`meta.properties`, as Kafka keeps them), checked at every start so a
//! data dir never joins another cluster or serves as another node.

use std::path::{Path, PathBuf};

/// Kafka's name and format: `key=value` lines.
pub const META_PROPERTIES: &str = "meta.properties";
const VERSION: &str = "1";

/// The identity a data dir belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a readable meta.properties: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "data dir {dir} belongs to node {stored}, not node {configured}: \
         start it with --node-id {stored}, or give node {configured} its own data dir"
    )]
    NodeId {
        dir: PathBuf,
        stored: i32,
        configured: i32,
    },
    #[error(
        "data dir {dir} belongs to cluster {stored}, but this node is starting in cluster \
         {expected}: a data dir never moves between clusters; give this node an empty data dir"
    )]
    ClusterId {
        dir: PathBuf,
        stored: String,
        expected: String,
    },
}

impl MetaProperties {
    fn render(&self) -> String {
        format!(
            "#Written by sluice at first start; never edit by hand.\nversion={VERSION}\ncluster.id={}\nnode.id={}\n",
            self.cluster_id, self.node_id
        )
    }

    fn parse(text: &str, path: &Path) -> Result<MetaProperties, IdentityError> {
        let malformed = |reason: &str| IdentityError::Malformed {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut cluster_id = None;
        let mut node_id = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(malformed("a line without '='"));
            };
            match key.trim() {
                "version" if value.trim() != VERSION => {
                    return Err(malformed("unknown version"));
                }
                "cluster.id" => cluster_id = Some(value.trim().to_string()),
                "node.id" => {
                    node_id = Some(value.trim().parse().map_err(|_| malformed("node.id"))?)
                }
                _ => {}
            }
        }
        Ok(MetaProperties {
            cluster_id: cluster_id
                .filter(|c| !c.is_empty())
                .ok_or_else(|| malformed("no cluster.id"))?,
            node_id: node_id.ok_or_else(|| malformed("no node.id"))?,
        })
    }
}

/// A new random cluster id in Kafka's form (a UUID, base64url, unpadded).
pub fn new_cluster_id() -> String {
    encode_uuid(uuid::Uuid::new_v4())
}

/// The cluster id every node of a voter list derives alike when none is
/// given, so the nodes of a new cluster agree without a format step.
pub fn cluster_id_for_voters(voters: &str) -> String {
    encode_uuid(uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        voters.as_bytes(),
    ))
}

fn encode_uuid(id: uuid::Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Whether a data dir had its identity already or was new at this start
/// (a first start, or a replaced disk: whatever it held is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDir {
    Known,
    New,
}

/// Reads the data dir's identity, or writes `node_id` with `expected` (or
/// a new random cluster id) on a first start. A stored identity must match:
/// the node id always, the cluster id when one is expected.
pub fn ensure(
    dir: &Path,
    node_id: i32,
    expected: Option<&str>,
) -> Result<(MetaProperties, DataDir), IdentityError> {
    let path = dir.join(META_PROPERTIES);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored = MetaProperties::parse(&text, &path)?;
            if stored.node_id != node_id {
                return Err(IdentityError::NodeId {
                    dir: dir.to_path_buf(),
                    stored: stored.node_id,
                    configured: node_id,
                });
            }
            if let Some(expected) = expected.filter(|e| *e != stored.cluster_id) {
                return Err(IdentityError::ClusterId {
                    dir: dir.to_path_buf(),
                    stored: stored.cluster_id,
                    expected: expected.to_string(),
                });
            }
            Ok((stored, DataDir::Known))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let fresh = MetaProperties {
                cluster_id: expected.map_or_else(new_cluster_id, str::to_string),
                node_id,
            };
            crate::metadata::write_atomically(&path, fresh.render().as_bytes()).map_err(io)?;
            tracing::info!(cluster_id = %fresh.cluster_id, node_id, "new data dir: identity written");
            Ok((fresh, DataDir::New))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_writes_the_identity_and_later_starts_check_it() {
        let dir = tempfile::tempdir().unwrap();
        let (first, new) = ensure(dir.path(), 3, None).unwrap();
        assert_eq!(new, DataDir::New);
        assert_eq!(first.node_id, 3);
        assert_eq!(first.cluster_id.len(), 22, "a base64url UUID");
        assert_eq!(
            ensure(dir.path(), 3, None).unwrap(),
            (first.clone(), DataDir::Known)
        );
        assert_eq!(
            ensure(dir.path(), 3, Some(&first.cluster_id)).unwrap(),
            (first, DataDir::Known)
        );
        let wrong_node = ensure(dir.path(), 4, None).unwrap_err();
        assert!(
            wrong_node.to_string().contains("belongs to node 3"),
            "{wrong_node}"
        );
        let wrong_cluster = ensure(dir.path(), 3, Some("other")).unwrap_err();
        assert!(matches!(wrong_cluster, IdentityError::ClusterId { .. }));
    }

    #[test]
    fn voters_derive_one_cluster_id() {
        let a = cluster_id_for_voters("1@h:1,2@h:2,3@h:3");
        assert_eq!(a, cluster_id_for_voters("1@h:1,2@h:2,3@h:3"));
        assert_ne!(a, cluster_id_for_voters("1@h:1,2@h:2,3@h:4"));
    }

    #[test]
    fn malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_PROPERTIES), "cluster.id=x\n").unwrap();
        assert!(matches!(
            ensure(dir.path(), 1, None),
            Err(IdentityError::Malformed { .. })
        ));
    }
}
