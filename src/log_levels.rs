//! The broker's log levels, changeable while it runs: what Kafka calls
//! broker loggers (KIP-412, `kafka-configs.sh --entity-type
//! broker-loggers`). A logger is a tracing target (a module path such as
//! `sluice::group`) or `root`, the level of everything else. The levels
//! start from `RUST_LOG` (or the default) and each change rebuilds the
//! filter through a reload handle.
//!
//! Only admin requests take the lock here. Events read the filter through
//! tracing's per-callsite interest, rebuilt on each reload, so logging on
//! the produce and fetch paths takes no lock.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Kafka's name of the level of everything no other logger names.
pub const ROOT: &str = "root";

/// The levels Kafka accepts (log4j's), each with the tracing level it
/// means: log4j's FATAL is tracing's ERROR, its ALL tracing's TRACE.
const LEVELS: &[(&str, &str)] = &[
    ("OFF", "off"),
    ("FATAL", "error"),
    ("ERROR", "error"),
    ("WARN", "warn"),
    ("INFO", "info"),
    ("DEBUG", "debug"),
    ("TRACE", "trace"),
    ("ALL", "trace"),
];

/// Most loggers with a level of their own: each is a directive the filter
/// checks, and a request can name any module path.
pub const LOGGERS_MAX: usize = 256;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    /// Kafka's message (InvalidConfigException).
    #[error("Cannot set the log level of {logger} to {level} as it is not a supported log level. Valid log4j levels are OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE, ALL")]
    Level { logger: String, level: String },
    #[error("Logger {0} does not exist!")]
    Logger(String),
    /// Kafka's message (InvalidRequestException).
    #[error("Removing the log level of the root logger is not allowed")]
    RootRemoval,
    #[error("at most {LOGGERS_MAX} loggers can have a level of their own")]
    TooMany,
    #[error("log levels are fixed in this process (no reloadable filter installed)")]
    NotInstalled,
    #[error("the log filter could not be rebuilt: {0}")]
    Rebuild(String),
}

/// The levels as configured: root's, each target's, and any directive
/// with span or field filters (`RUST_LOG` may hold those), kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Levels {
    root: String,
    targets: BTreeMap<String, String>,
    other: Vec<String>,
}

impl Levels {
    /// `spec` as `RUST_LOG` takes it: comma-separated directives.
    fn parse(spec: &str) -> Levels {
        let mut levels = Levels {
            // tracing's own default when no directive sets one.
            root: "error".into(),
            targets: BTreeMap::new(),
            other: Vec::new(),
        };
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                None if is_level(directive) => levels.root = directive.to_ascii_lowercase(),
                Some((target, level)) if is_target(target) && is_level(level) => {
                    levels
                        .targets
                        .insert(target.to_string(), level.to_ascii_lowercase());
                }
                _ => levels.other.push(directive.to_string()),
            }
        }
        levels
    }

    /// The filter directives, root's first (later ones are more specific).
    fn spec(&self) -> String {
        let mut directives = vec![self.root.clone()];
        directives.extend(self.targets.iter().map(|(t, l)| format!("{t}={l}")));
        directives.extend(self.other.iter().cloned());
        directives.join(",")
    }

    /// Each logger with its level under Kafka's (log4j's) name.
    fn loggers(&self) -> Vec<(String, String)> {
        std::iter::once((ROOT.to_string(), self.root.to_ascii_uppercase()))
            .chain(
                self.targets
                    .iter()
                    .map(|(t, l)| (t.clone(), l.to_ascii_uppercase())),
            )
            .collect()
    }

    /// Sets `logger` to `level` (a log4j name) or, with `None`, removes its
    /// own level so it follows root's.
    fn change(&mut self, logger: &str, level: Option<&str>) -> Result<(), LevelError> {
        if logger != ROOT && !is_target(logger) {
            return Err(LevelError::Logger(logger.to_string()));
        }
        let Some(level) = level else {
            if logger == ROOT {
                return Err(LevelError::RootRemoval);
            }
            self.targets.remove(logger);
            return Ok(());
        };
        let Some(&(_, tracing_level)) = LEVELS.iter().find(|(name, _)| *name == level) else {
            return Err(LevelError::Level {
                logger: logger.to_string(),
                level: level.to_string(),
            });
        };
        if logger == ROOT {
            self.root = tracing_level.to_string();
        } else {
            if !self.targets.contains_key(logger) && self.targets.len() >= LOGGERS_MAX {
                return Err(LevelError::TooMany);
            }
            self.targets
                .insert(logger.to_string(), tracing_level.to_string());
        }
        Ok(())
    }
}

fn is_level(s: &str) -> bool {
    ["off", "error", "warn", "info", "debug", "trace"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(s))
}

/// A module path: identifiers joined by `::`.
fn is_target(s: &str) -> bool {
    s.split("::").all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

struct Installed {
    levels: Mutex<Levels>,
    handle: reload::Handle<EnvFilter, Registry>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the process's logger: to stderr, filtered by `RUST_LOG` or
/// else `default`, through a filter [`change`] can rebuild.
pub fn init(default: &str) {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| default.to_string());
    let levels = Levels::parse(&spec);
    let filter = EnvFilter::try_new(levels.spec()).unwrap_or_else(|_| EnvFilter::new(default));
    let (layer, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let installed = Installed {
        levels: Mutex::new(levels),
        handle,
    };
    assert!(
        INSTALLED.set(installed).is_ok(),
        "log levels installed twice"
    );
}

/// Each logger with a level of its own, root first; empty when the levels
/// are fixed (no [`init`] in this process).
pub fn loggers() -> Vec<(String, String)> {
    INSTALLED.get().map_or_else(Vec::new, |i| {
        i.levels.lock().unwrap_or_else(|p| p.into_inner()).loggers()
    })
}

/// Applies `changes` ((logger, level or `None` to remove)) together, or
/// none of them; with `validate_only`, checks them only.
pub fn change(changes: &[(String, Option<String>)], validate_only: bool) -> Result<(), LevelError> {
    let installed = INSTALLED.get().ok_or(LevelError::NotInstalled)?;
    let mut levels = installed.levels.lock().unwrap_or_else(|p| p.into_inner());
    let mut next = levels.clone();
    for (logger, level) in changes {
        next.change(logger, level.as_deref())?;
    }
    if validate_only {
        return Ok(());
    }
    let filter = EnvFilter::try_new(next.spec()).map_err(|e| LevelError::Rebuild(e.to_string()))?;
    installed
        .handle
        .reload(filter)
        .map_err(|e| LevelError::Rebuild(e.to_string()))?;
    tracing::info!(changes = ?changes, "log levels changed");
    *levels = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rust_log_into_root_targets_and_the_rest() {
        let levels = Levels::parse("info,openraft=warn,sluice::group=DEBUG,sluice[conn]=trace");
        assert_eq!(levels.root, "info");
        assert_eq!(levels.targets.get("openraft").unwrap(), "warn");
        assert_eq!(levels.targets.get("sluice::group").unwrap(), "debug");
        assert_eq!(levels.other, ["sluice[conn]=trace"]);
        assert_eq!(
            levels.spec(),
            "info,openraft=warn,sluice::group=debug,sluice[conn]=trace"
        );
        assert_eq!(
            levels.loggers()[..2],
            [
                ("root".to_string(), "INFO".to_string()),
                ("openraft".to_string(), "WARN".to_string())
            ]
        );
    }

    #[test]
    fn changes_as_kafka_validates_them() {
        let mut levels = Levels::parse("info");
        levels.change("sluice::group", Some("FATAL")).unwrap();
        assert_eq!(levels.spec(), "info,sluice::group=error");
        levels.change("root", Some("ALL")).unwrap();
        assert_eq!(levels.root, "trace");
        levels.change("sluice::group", None).unwrap();
        assert_eq!(levels.spec(), "trace");
        assert_eq!(levels.change("root", None), Err(LevelError::RootRemoval));
        assert!(matches!(
            levels.change("sluice", Some("info")),
            Err(LevelError::Level { .. })
        ));
        assert_eq!(
            levels.change("kafka.server.Foo", Some("INFO")),
            Err(LevelError::Logger("kafka.server.Foo".into()))
        );
        for n in 0..LOGGERS_MAX {
            levels.change(&format!("m{n}"), Some("INFO")).unwrap();
        }
        assert_eq!(
            levels.change("one_more", Some("INFO")),
            Err(LevelError::TooMany)
        );
        levels.change("m0", Some("DEBUG")).unwrap();
    }
}
