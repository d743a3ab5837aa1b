//! ARCHITECTURE's layering rule, checked: no arrow points back up. Each
//! rule names a module (a directory under `src/`) and the modules its code
//! must not name through a `crate::` path, with the exceptions allowed
//! (`net::client` is a leaf: the broker's own client connection, below
//! everything that dials another broker).

/// (module, the modules above it, exceptions).
const RULES: &[(&str, &[&str], &[&str])] = &[
    ("runtime", ABOVE_RUNTIME, &[]),
    ("record", ABOVE_STORAGE, &[]),
    ("compression", ABOVE_STORAGE, &[]),
    ("message_format", ABOVE_STORAGE, &[]),
    ("storage", ABOVE_STORAGE, &[]),
    ("controller", ABOVE_STORAGE, &[]),
    ("metadata", ABOVE_STORAGE, &[]),
    ("quota", ABOVE_STORAGE, &[]),
    ("client_metrics", ABOVE_STORAGE, &[]),
    ("stats", ABOVE_STORAGE, &[]),
    (
        "replication",
        &[
            "shard", "group", "txn", "share", "services", "handlers", "net", "broker",
        ],
        &[],
    ),
    (
        "shard",
        &[
            "group", "txn", "share", "services", "handlers", "net", "broker", "cluster",
        ],
        &[],
    ),
    (
        "group",
        &["txn", "share", "services", "handlers", "net", "broker"],
        &[],
    ),
    (
        "txn",
        &["services", "handlers", "net", "broker"],
        &["net::client"],
    ),
    (
        "share",
        &["services", "handlers", "net", "broker"],
        &["net::client"],
    ),
    ("services", &["handlers", "net", "broker"], &["net::client"]),
    // `net::sasl` is the connection's authentication state, which the
    // SASL handlers advance and every request is gated on.
    ("handlers", &["net", "broker"], &["net::sasl"]),
];

const ABOVE_STORAGE: &[&str] = &[
    "shard",
    "replication",
    "group",
    "txn",
    "share",
    "services",
    "handlers",
    "net",
    "broker",
    "cluster",
];

const ABOVE_RUNTIME: &[&str] = &[
    "storage",
    "record",
    "compression",
    "message_format",
    "controller",
    "metadata",
    "config",
    "shard",
    "replication",
    "group",
    "txn",
    "share",
    "services",
    "handlers",
    "net",
    "broker",
    "cluster",
];

/// Every `crate::` path in `text`, without the prefix; a grouped import
/// (`crate::{a, b::c}`) gives each of its paths.
fn crate_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            paths.extend(inner.split(',').map(|p| p.trim().to_string()));
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            paths.push(rest[..end].to_string());
        }
    }
    paths
}

fn names(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_module_names_one_above_it() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for (module, above, allowed) in RULES {
        let dir = src.join(module);
        assert!(dir.is_dir(), "no module directory {}", dir.display());
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            for path in crate_paths(&text) {
                let upward = above.iter().any(|m| names(&path, m));
                let excepted = allowed.iter().any(|m| names(&path, m));
                if upward && !excepted {
                    offenders.push(format!("{} names crate::{path}", file.display()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "arrows pointing up: {offenders:#?}");
}

#[test]
fn grouped_imports_are_seen() {
    let paths =
        crate_paths("use crate::{group::Coordinator, txn};\nlet x = crate::shard::Shard::new;");
    assert_eq!(paths, ["group::Coordinator", "txn", "shard::Shard::new"]);
    assert!(names("group::Coordinator", "group"));
    assert!(!names("groups", "group"));
}
