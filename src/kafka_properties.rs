//! A Kafka broker's `server.properties` read as Sluice's config, so an
//! operator can start Sluice from the file a Kafka node runs with
//! (`sluice serve --config server.properties`).
//!
//! Sluice's keys are Kafka's broker settings in snake_case, so most keys
//! carry over by name, typed as Sluice's own config types them; a Kafka
//! broker's topic defaults (`log.segment.bytes`, `log.retention.hours`,
//! `message.max.bytes`, ...) go to the `[log]` table through the same
//! broker-to-topic names DescribeConfigs uses; the listeners, the
//! controller quorum, the roles and the log dir are read by hand. What
//! Sluice has no use for (thread counts, socket buffers, ...) is given back
//! to be logged. What it cannot do as the file says (several log dirs, a
//! controller-only node, a listener secured with Java keystores) is an
//! error that names the setting, never silently something else.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use toml::{Table, Value};

use crate::broker_configs::{topic_key_of, unit_to_ms, TIME_UNIT_SYNONYMS};
use crate::config::{list_items, BrokerConfig};
use crate::security::listeners::SecurityProtocol;

/// The file read as a config table, and what of it was not used.
#[derive(Debug)]
pub struct Translated {
    pub table: Table,
    /// Keys Sluice has no setting for, sorted.
    pub unused: Vec<String>,
    /// Topic defaults Sluice takes only at run time, as dynamic broker
    /// configs (`kafka-configs.sh --entity-type brokers --entity-default`),
    /// not from its file; sorted.
    pub dynamic_only: Vec<String>,
    /// How a setting was read where it differs from Kafka's own reading.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    #[error("not a properties file: {0}")]
    Syntax(String),
    #[error("{key}={value}: {reason}")]
    Value {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// Kafka keys whose Sluice key is not their snake_case form (`broker.id`
/// is read with `node.id`, by hand).
const RENAMED: &[(&str, &str)] = &[
    (
        "log.retention.check.interval.ms",
        "retention_check_interval_ms",
    ),
    (
        "transaction.state.log.num.partitions",
        "transaction_state_num_partitions",
    ),
    (
        "sasl.mechanism.inter.broker.protocol",
        "inter_broker_sasl_mechanism",
    ),
];

/// Sluice keys with no default (so not in the defaults' table), all strings.
const OPTIONAL_STRINGS: &[&str] = &[
    "broker_rack",
    "inter_broker_listener_name",
    "inter_broker_sasl_mechanism",
];

/// Kafka's authorizers, which Sluice's ACL authorizer stands for (the
/// KRaft one, and the ZooKeeper-era one that reads the same ACLs).
const ACL_AUTHORIZERS: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// Reads `text` (Java properties) as a config table.
pub fn translate(text: &str) -> Result<Translated, PropertiesError> {
    let mut props: BTreeMap<String, String> = java_properties::read(text.as_bytes())
        .map_err(|e| PropertiesError::Syntax(e.to_string()))?
        .into_iter()
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut out = Translated {
        table: Table::new(),
        unused: Vec::new(),
        dynamic_only: Vec::new(),
        notes: Vec::new(),
    };
    if props.contains_key("zookeeper.connect") {
        return Err(PropertiesError::Unsupported(
            "zookeeper.connect: a ZooKeeper-mode config; Sluice runs as Kafka's KRaft mode does (process.roles, controller.quorum.voters)".into(),
        ));
    }
    coarser_units(&mut props);
    let node_id = node_id(&mut props, &mut out.table)?;
    log_dir(&mut props, &mut out.table)?;
    let one_node = quorum(&mut props, node_id, &mut out)?;
    listeners(&mut props, one_node, &mut out)?;
    authorizer(&mut props, &mut out.table)?;
    let defaults = Table::try_from(BrokerConfig::default()).expect("the defaults serialize");
    for (key, value) in props {
        match place(&key, &defaults) {
            Some((path, like)) => {
                let typed = typed(&key, &value, like)?;
                insert(&mut out.table, &path, typed);
            }
            None if topic_key_of(&key).is_some() => out.dynamic_only.push(key),
            None => out.unused.push(key),
        }
    }
    Ok(out)
}

/// Where `key` goes (its path in the table) and a value of its type.
fn place<'a>(key: &str, defaults: &'a Table) -> Option<(Vec<String>, &'a Value)> {
    static STRING: Value = Value::String(String::new());
    let name = RENAMED
        .iter()
        .find(|(k, _)| *k == key)
        .map_or_else(|| key.replace('.', "_"), |(_, name)| name.to_string());
    if let Some(like) = defaults.get(&name).filter(|v| !v.is_table()) {
        return Some((vec![name], like));
    }
    if OPTIONAL_STRINGS.contains(&name.as_str()) {
        return Some((vec![name], &STRING));
    }
    // A topic default: the topic config it defaults, in `[log]`.
    let field = topic_key_of(key)?.replace('.', "_");
    let like = defaults.get("log")?.as_table()?.get(&field)?;
    Some((vec!["log".into(), field], like))
}

/// `value` as the type `like` has (Kafka's list type is comma-separated).
fn typed(key: &str, value: &str, like: &Value) -> Result<Value, PropertiesError> {
    let bad = |reason: &str| PropertiesError::Value {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    };
    Ok(match like {
        Value::Integer(_) => Value::Integer(value.parse().map_err(|_| bad("not an integer"))?),
        Value::Float(_) => Value::Float(value.parse().map_err(|_| bad("not a number"))?),
        // Java's Boolean.parseBoolean, as Kafka's ConfigDef reads it.
        Value::Boolean(_) => match value.to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err(bad("not true or false")),
        },
        // Kafka's super.users is the one list it splits on semicolons
        // (principals may hold commas).
        Value::Array(_) if key == "super.users" => Value::Array(
            value
                .split(';')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.into()))
                .collect(),
        ),
        Value::Array(_) => Value::Array(
            list_items(value)
                .into_iter()
                .map(|item| Value::String(item.into()))
                .collect(),
        ),
        _ => Value::String(value.into()),
    })
}

fn insert(table: &mut Table, path: &[String], value: Value) {
    match path {
        [key] => {
            table.insert(key.clone(), value);
        }
        [first, rest @ ..] => {
            let inner = table
                .entry(first.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(inner) = inner {
                insert(inner, rest, value);
            }
        }
        [] => {}
    }
}

/// `log.retention.hours` and the other coarser spellings as their `.ms`
/// key, as Kafka ranks them: the `.ms` key first, then the finer unit.
fn coarser_units(props: &mut BTreeMap<String, String>) {
    for (coarse, ms_key, unit) in TIME_UNIT_SYNONYMS {
        if let Some(value) = props.remove(*coarse) {
            if !props.contains_key(*ms_key) {
                // Not a number: left for `typed` to refuse by its own name.
                let ms = unit_to_ms(&value, *unit).unwrap_or(value);
                props.insert(ms_key.to_string(), ms);
            }
        }
    }
}

/// `node.id` (or the older `broker.id`), which the quorum checks need.
fn node_id(
    props: &mut BTreeMap<String, String>,
    table: &mut Table,
) -> Result<i64, PropertiesError> {
    let legacy = props.remove("broker.id");
    let Some((key, value)) = props
        .remove("node.id")
        .map(|v| ("node.id", v))
        .or(legacy.map(|v| ("broker.id", v)))
    else {
        return Ok(0);
    };
    let id = typed(key, &value, &Value::Integer(0))?;
    let n = id.as_integer().expect("typed as an integer");
    table.insert("node_id".into(), id);
    Ok(n)
}

/// `authorizer.class.name`: Kafka's ACL authorizers are Sluice's `acl`.
fn authorizer(
    props: &mut BTreeMap<String, String>,
    table: &mut Table,
) -> Result<(), PropertiesError> {
    let Some(class) = props.remove("authorizer.class.name") else {
        return Ok(());
    };
    let authorizer = match class.as_str() {
        "" => "none",
        c if ACL_AUTHORIZERS.contains(&c) => "acl",
        _ => {
            return Err(PropertiesError::Unsupported(format!(
                "authorizer.class.name={class}: Sluice's authorizer checks Kafka's ACLs ({}); a plugin of another class cannot run here",
                ACL_AUTHORIZERS[0]
            )))
        }
    };
    table.insert("authorizer".into(), Value::String(authorizer.into()));
    Ok(())
}

/// `log.dirs` (else `log.dir`): Sluice keeps one data dir per node.
fn log_dir(props: &mut BTreeMap<String, String>, table: &mut Table) -> Result<(), PropertiesError> {
    let dirs = props.remove("log.dirs");
    let dir = props.remove("log.dir");
    let Some(value) = dirs.or(dir) else {
        return Ok(());
    };
    match list_items(&value)[..] {
        [one] => {
            table.insert("data_dir".into(), Value::String(one.into()));
            Ok(())
        }
        _ => Err(PropertiesError::Unsupported(format!(
            "log.dirs={value}: Sluice keeps one data dir per node (no JBOD); name one"
        ))),
    }
}

/// `process.roles` and the controller quorum. Returns whether the node is
/// a one-node cluster (no voter list: Sluice then runs no quorum at all).
fn quorum(
    props: &mut BTreeMap<String, String>,
    node_id: i64,
    out: &mut Translated,
) -> Result<bool, PropertiesError> {
    let roles: BTreeSet<String> = props
        .remove("process.roles")
        .map(|v| list_items(&v).into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(role) = roles.iter().find(|r| *r != "broker" && *r != "controller") {
        return Err(PropertiesError::Value {
            key: "process.roles".into(),
            value: role.clone(),
            reason: "a role is broker or controller".into(),
        });
    }
    let controller = roles.contains("controller");
    if controller && !roles.contains("broker") {
        return Err(PropertiesError::Unsupported(
            "process.roles=controller: Sluice runs every controller beside a broker; use process.roles=broker,controller".into(),
        ));
    }
    let voters = props.remove("controller.quorum.voters");
    let bootstrap = props.remove("controller.quorum.bootstrap.servers");
    match (voters, bootstrap) {
        (Some(voters), _) => {
            let ids: Vec<i64> = list_items(&voters)
                .iter()
                .filter_map(|v| v.split_once('@')?.0.trim().parse().ok())
                .collect();
            if controller != ids.contains(&node_id) {
                return Err(PropertiesError::Unsupported(format!(
                    "controller.quorum.voters={voters} and process.roles: a node runs a controller exactly when the voters name it (node.id={node_id})"
                )));
            }
            out.table
                .insert("controller_quorum_voters".into(), Value::String(voters));
            Ok(false)
        }
        (None, Some(servers)) if controller && list_items(&servers).len() == 1 => {
            out.notes.push(format!(
                "controller.quorum.bootstrap.servers={servers} names this node alone: a one-node cluster, with no quorum listener"
            ));
            Ok(true)
        }
        (None, Some(servers)) => Err(PropertiesError::Unsupported(format!(
            "controller.quorum.bootstrap.servers={servers} without controller.quorum.voters: name the voters (ID@HOST:PORT,...) with controller.quorum.voters"
        ))),
        (None, None) => Ok(true),
    }
}

/// Kafka's listeners: the controller's (`controller.listener.names`) is
/// the quorum's address, the others are client listeners. Only PLAINTEXT
/// ones are read from here: a secured listener's certificates and SASL
/// settings are PEM files and keys of Sluice's own config.
fn listeners(
    props: &mut BTreeMap<String, String>,
    one_node: bool,
    out: &mut Translated,
) -> Result<(), PropertiesError> {
    let listeners = props.remove("listeners");
    let advertised = props.remove("advertised.listeners");
    let protocols = props.remove("listener.security.protocol.map");
    let controllers = props
        .remove("controller.listener.names")
        .unwrap_or_default();
    let Some(listeners) = listeners else {
        return Ok(());
    };
    let protocols: HashMap<String, String> = list_items(protocols.as_deref().unwrap_or(""))
        .into_iter()
        .filter_map(|p| p.split_once(':'))
        .map(|(name, protocol)| (name.trim().to_string(), protocol.trim().to_string()))
        .collect();
    let controllers = list_items(&controllers);
    let advertised: HashMap<String, String> = match advertised {
        Some(a) => parse_listeners("advertised.listeners", &a)?
            .into_iter()
            .filter(|(_, host, _)| !host.is_empty())
            .map(|(name, host, port)| (name, format!("{host}:{port}")))
            .collect(),
        None => HashMap::new(),
    };
    let mut table = Table::new();
    for (name, host, port) in parse_listeners("listeners", &listeners)? {
        // A name that is a protocol stands for it (Kafka's default map).
        let protocol = protocols
            .get(&name)
            .cloned()
            .or_else(|| SecurityProtocol::parse(&name).map(|_| name.clone()))
            .ok_or_else(|| {
                PropertiesError::Unsupported(format!(
                    "listener {name} has no security protocol in listener.security.protocol.map"
                ))
            })?;
        if SecurityProtocol::parse(&protocol) != Some(SecurityProtocol::Plaintext) {
            return Err(PropertiesError::Unsupported(format!(
                "listener {name} is {protocol}: its certificates and SASL settings go in Sluice's own config ([listeners.{name}] with PEM files, README Security), not server.properties"
            )));
        }
        // An empty host binds every interface, as in Kafka.
        let bind = if host.is_empty() {
            format!("0.0.0.0:{port}")
        } else {
            format!("{host}:{port}")
        };
        if controllers.contains(&name.as_str()) {
            if !one_node && !out.table.contains_key("controller_listen") {
                out.table
                    .insert("controller_listen".into(), Value::String(bind));
            }
            continue;
        }
        let mut l = Table::new();
        l.insert("protocol".into(), Value::String(protocol));
        l.insert("listen".into(), Value::String(bind));
        if let Some(a) = advertised.get(&name) {
            l.insert("advertise".into(), Value::String(a.clone()));
        }
        table.insert(name, Value::Table(l));
    }
    if table.is_empty() {
        return Err(PropertiesError::Unsupported(format!(
            "listeners={listeners}: no listener for clients besides the controller's"
        )));
    }
    out.table.insert("listeners".into(), Value::Table(table));
    Ok(())
}

/// `NAME://HOST:PORT,...` as (name, host, port); the host may be empty or
/// a bracketed IPv6 address.
fn parse_listeners(key: &str, value: &str) -> Result<Vec<(String, String, u16)>, PropertiesError> {
    list_items(value)
        .into_iter()
        .map(|item| {
            let bad = || PropertiesError::Value {
                key: key.into(),
                value: item.into(),
                reason: "expected NAME://HOST:PORT".into(),
            };
            let (name, address) = item.split_once("://").ok_or_else(bad)?;
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let port = port.parse().map_err(|_| bad())?;
            Ok((name.trim().to_string(), host.to_string(), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka 4's own `config/server.properties`, comments left out.
    const KAFKA_4_SERVER_PROPERTIES: &str = "\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
";

    fn config(text: &str) -> (BrokerConfig, Translated) {
        let t = translate(text).expect("translates");
        let c = Value::Table(t.table.clone()).try_into().expect("a config");
        (c, t)
    }

    #[test]
    fn kafkas_own_server_properties_start_a_one_node_broker() {
        let (c, t) = config(KAFKA_4_SERVER_PROPERTIES);
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.data_dir,
            std::path::PathBuf::from("/tmp/kraft-combined-logs")
        );
        assert_eq!(c.controller_quorum_voters, None, "standalone: one node");
        assert_eq!(c.controller_listen, None);
        let l = &c.listeners["PLAINTEXT"];
        assert_eq!(l.listen, "0.0.0.0:9092");
        assert_eq!(l.advertise.as_deref(), Some("localhost:9092"));
        assert_eq!(c.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
        assert_eq!(c.log.retention_ms, 168 * 3_600_000);
        assert_eq!(c.log.segment_bytes, 1 << 30);
        assert_eq!(c.retention_check_interval_ms, 300_000);
        assert_eq!(
            (c.num_partitions, c.offsets_topic_replication_factor),
            (1, 1)
        );
        assert_eq!(
            t.unused,
            [
                "num.io.threads",
                "num.network.threads",
                "num.recovery.threads.per.data.dir",
                "share.coordinator.state.topic.min.isr",
                "share.coordinator.state.topic.replication.factor",
                "socket.receive.buffer.bytes",
                "socket.send.buffer.bytes",
                "transaction.state.log.min.isr",
                "transaction.state.log.replication.factor",
            ]
        );
        assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
    }

    #[test]
    fn a_cluster_nodes_file_names_its_quorum_and_topic_defaults() {
        let (c, t) = config(
            "process.roles=broker,controller\n\
             node.id=2\n\
             controller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093\n\
             listeners=BROKER://10.0.0.2:9092,CONTROLLER://10.0.0.2:9093\n\
             listener.security.protocol.map=BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=BROKER\n\
             broker.rack=eu-1a\n\
             default.replication.factor=3\n\
             min.insync.replicas=2\n\
             auto.create.topics.enable=FALSE\n\
             log.retention.minutes=90\n\
             log.retention.hours=1\n\
             log.roll.hours=2\n\
             message.max.bytes=2097152\n\
             log.cleaner.min.cleanable.ratio=0.3\n\
             log.flush.interval.messages=1000\n\
             authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
             super.users=User:admin;User:CN=broker,O=example\n\
             compression.type=zstd\n",
        );
        assert_eq!(
            c.controller_quorum_voters.as_deref(),
            Some("1@h1:9093,2@h2:9093,3@h3:9093")
        );
        assert_eq!(c.controller_listen.as_deref(), Some("10.0.0.2:9093"));
        assert_eq!(c.listeners["BROKER"].listen, "10.0.0.2:9092");
        assert_eq!(c.broker_rack.as_deref(), Some("eu-1a"));
        assert_eq!(
            (c.default_replication_factor, c.min_insync_replicas),
            (3, 2)
        );
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.log.retention_ms, 90 * 60_000, "minutes rank over hours");
        assert_eq!(c.log.segment_ms, 2 * 3_600_000);
        assert_eq!(c.log.max_message_bytes, 2 << 20);
        assert_eq!(c.log.min_cleanable_dirty_ratio, 0.3);
        assert_eq!(c.log.flush_messages, 1000);
        assert_eq!(c.authorizer, crate::security::Authorizer::Acl);
        assert_eq!(c.super_users, ["User:admin", "User:CN=broker,O=example"]);
        assert!(t.unused.is_empty(), "{:?}", t.unused);
        assert_eq!(t.dynamic_only, ["compression.type"]);
    }

    #[test]
    fn what_sluice_cannot_do_as_written_is_refused() {
        let unsupported = |text: &str| match translate(text) {
            Err(PropertiesError::Unsupported(why)) => why,
            other => panic!("{text}: {other:?}"),
        };
        assert!(unsupported("log.dirs=/a,/b").contains("one data dir"));
        assert!(unsupported(
            "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@h:9093"
        )
        .contains("beside a broker"));
        assert!(
            unsupported("process.roles=broker\nnode.id=1\ncontroller.quorum.voters=1@h:9093")
                .contains("exactly when")
        );
        assert!(unsupported(
            "process.roles=broker,controller\ncontroller.quorum.bootstrap.servers=a:1,b:1"
        )
        .contains("controller.quorum.voters"));
        assert!(unsupported("listeners=SSL://:9093").contains("PEM"));
        assert!(
            unsupported("listeners=INTERNAL://:9093").contains("listener.security.protocol.map")
        );
        assert!(unsupported("zookeeper.connect=zk:2181").contains("ZooKeeper"));
        assert!(unsupported("authorizer.class.name=com.example.Custom").contains("ACLs"));
        let (older, _) = config("broker.id=5\n");
        assert_eq!(older.node_id, 5, "the older name of node.id");
        assert!(matches!(
            translate("num.partitions=many"),
            Err(PropertiesError::Value { .. })
        ));
        assert!(matches!(
            translate("listeners=PLAINTEXT://nohost"),
            Err(PropertiesError::Value { .. })
        ));
    }
}
