//! Topic changes. Only the controller shard (0) changes the topics
//! snapshot: it validates, persists with write-and-rename, and sends the new
//! snapshot to every shard before answering, so once a client hears
//! "created" every shard can serve the topic.

use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use kafka_protocol::ResponseError;

use super::*;
use crate::client_metrics::ClientMetricsConfigError;
use crate::config::validate_topic_config;
use crate::group_configs::GroupConfigError;
use crate::metadata::{new_topic_id, valid_topic_name, TopicMeta, PARTITIONS_PER_TOPIC_MAX};

pub const CONTROLLER_SHARD: usize = 0;

fn ok() -> AdminOutcome {
    AdminOutcome {
        error: 0,
        message: None,
    }
}

fn refuse(error: ResponseError, message: impl Into<String>) -> AdminOutcome {
    AdminOutcome {
        error: error.code(),
        message: Some(message.into()),
    }
}

impl Shard {
    /// Runs a topic change on the controller shard, wherever it is called.
    pub async fn admin(self: &Rc<Self>, op: AdminOp) -> AdminOutcome {
        if self.id == CONTROLLER_SHARD {
            return self.admin_local(op).await;
        }
        let (tx, rx) = oneshot::channel();
        if self
            .mesh
            .send_to(CONTROLLER_SHARD, ShardMsg::Admin { op, reply: tx })
            .await
            .is_err()
        {
            return refuse(
                ResponseError::UnknownServerError,
                "controller shard is gone",
            );
        }
        rx.await.unwrap_or_else(|_| {
            refuse(
                ResponseError::UnknownServerError,
                "controller shard is gone",
            )
        })
    }

    pub(super) async fn admin_local(self: &Rc<Self>, op: AdminOp) -> AdminOutcome {
        assert_eq!(
            self.id, CONTROLLER_SHARD,
            "only the controller changes topics"
        );
        let _serial = self.admin_lock.lock().await;
        if let Some(controller) = self.controller.clone() {
            // Kafka computes a change on the active controller, against all
            // that is committed. Here it is computed on this broker, so the
            // broker first catches up: a change another broker answered a
            // moment ago must be in what this one builds on (an APPEND
            // after it, partitions added twice).
            if let Err(refused) = self.catch_up(&controller).await {
                return refused;
            }
            let current = self.topics();
            return self.admin_cluster(&controller, &current, op).await;
        }
        let current = self.topics();
        // Alone, a replica can only be here, one per partition.
        let node = self.config.node_id;
        if let Err(refused) = check_op_assignments(&current, &op, |b| b == node, |_| 1) {
            return refused;
        }
        let next = match plan(&self.config, &current, op) {
            Ok(Some(next)) => next,
            Ok(None) => return ok(),
            Err(refused) => return refused,
        };
        let next = Arc::new(next);
        let data_dir = self.config.data_dir.clone();
        let to_persist = next.clone();
        if let Err(e) = crate::runtime::blocking(move || to_persist.persist(&data_dir)).await {
            tracing::error!(error = %e, "persisting topics");
            return refuse(
                ResponseError::KafkaStorageError,
                format!("persisting topics: {e}"),
            );
        }
        self.broadcast_topics(next).await;
        ok()
    }

    /// Gives every shard the snapshot and waits until all have applied it.
    pub async fn broadcast_topics(self: &Rc<Self>, topics: Arc<Topics>) {
        let mut acks = Vec::with_capacity(self.count);
        for peer in (0..self.count).filter(|&p| p != self.id) {
            let (tx, rx) = oneshot::channel();
            let msg = ShardMsg::Topics {
                topics: topics.clone(),
                reply: tx,
            };
            if self.mesh.send_to(peer, msg).await.is_ok() {
                acks.push(rx);
            }
        }
        self.apply_topics(topics).await;
        for ack in acks {
            let _ = ack.await;
        }
    }
}

/// Kafka's checks of the replicas an op names (CreateTopic,
/// CreatePartitions): every partition has replicas, none twice, all
/// registered (`registered`); a new topic's partitions as many replicas
/// each; added partitions as many as the assignments and with as many
/// replicas as the topic's first (`replicas_of`), as KRaft's controller
/// checks them. INVALID_REPLICA_ASSIGNMENT otherwise.
pub(super) fn check_op_assignments(
    current: &Topics,
    op: &AdminOp,
    registered: impl Fn(i32) -> bool,
    replicas_of: impl Fn(&str) -> usize,
) -> Result<(), AdminOutcome> {
    let invalid = |why: String| Err(refuse(ResponseError::InvalidReplicaAssignment, why));
    let assignments = match op {
        AdminOp::CreateTopic {
            assignments: Some(assignments),
            ..
        } => {
            let first = assignments.first().map_or(0, Vec::len);
            if assignments.iter().any(|a| a.len() != first) {
                return invalid(
                    "All partitions in the manual partition assignment must have the same \
                     number of replicas."
                        .to_string(),
                );
            }
            assignments
        }
        AdminOp::CreatePartitions {
            name,
            count,
            assignments: Some(assignments),
            ..
        } => {
            // An unknown topic or a count that does not grow it is the
            // plan's refusal, as without assignments.
            if let Some(topic) = current.get(name).filter(|t| *count > t.partitions) {
                let added = count - topic.partitions;
                if usize::try_from(added).ok() != Some(assignments.len()) {
                    return invalid(format!(
                        "Attempted to add {added} additional partition(s), but only {} \
                         assignment(s) were specified.",
                        assignments.len()
                    ));
                }
                let existing = replicas_of(name);
                if let Some(other) = assignments.iter().find(|a| a.len() != existing) {
                    return invalid(format!(
                        "The manual partition assignment includes a partition with {} \
                         replica(s), but this is not consistent with previous partitions, \
                         which have {existing} replica(s).",
                        other.len()
                    ));
                }
            }
            assignments
        }
        _ => return Ok(()),
    };
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(format!(
                "partition {p} has no replicas (or partitions skip an index)"
            ));
        }
        let distinct: std::collections::BTreeSet<_> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return invalid(format!("partition {p} names a broker twice: {replicas:?}"));
        }
        if let Some(unknown) = replicas.iter().find(|&&b| !registered(b)) {
            return invalid(format!("partition {p}: broker {unknown} is not registered"));
        }
    }
    Ok(())
}

/// The snapshot after `op`, `None` when nothing changes (validate_only), or
/// the refusal Kafka would answer.
pub(super) fn plan(
    config: &BrokerConfig,
    current: &Topics,
    op: AdminOp,
) -> Result<Option<Topics>, AdminOutcome> {
    let mut next = current.clone();
    next.version += 1;
    match op {
        AdminOp::CreateTopic {
            name,
            partitions,
            configs,
            validate_only,
            ..
        } => {
            if !valid_topic_name(&name) {
                return Err(refuse(
                    ResponseError::InvalidTopicException,
                    format!("invalid topic name {name:?}"),
                ));
            }
            if current.get(&name).is_some() {
                return Err(refuse(
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name} already exists"),
                ));
            }
            let partitions = if partitions == -1 {
                config.num_partitions
            } else {
                partitions
            };
            if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
                return Err(refuse(
                    ResponseError::InvalidPartitions,
                    format!("partitions must be 1..={PARTITIONS_PER_TOPIC_MAX}"),
                ));
            }
            for (k, v) in &configs {
                validate_topic_config(k, v)
                    .map_err(|e| refuse(ResponseError::InvalidConfig, e.to_string()))?;
            }
            if validate_only {
                return Ok(None);
            }
            let meta = TopicMeta {
                name: name.clone(),
                id: new_topic_id(),
                partitions,
                configs,
                parsed: Default::default(),
            };
            next.topics.insert(name, Arc::new(meta));
        }
        AdminOp::DeleteTopic { name } => {
            if next.topics.remove(&name).is_none() {
                return Err(refuse(
                    ResponseError::UnknownTopicOrPartition,
                    format!("no topic {name}"),
                ));
            }
        }
        AdminOp::CreatePartitions {
            name,
            count,
            validate_only,
            ..
        } => {
            let Some(topic) = current.get(&name) else {
                return Err(refuse(
                    ResponseError::UnknownTopicOrPartition,
                    format!("no topic {name}"),
                ));
            };
            if count <= topic.partitions || count > PARTITIONS_PER_TOPIC_MAX {
                return Err(refuse(
                    ResponseError::InvalidPartitions,
                    format!("topic {name} has {} partitions; new count must be larger and at most {PARTITIONS_PER_TOPIC_MAX}", topic.partitions),
                ));
            }
            if validate_only {
                return Ok(None);
            }
            let mut topic = topic.as_ref().clone();
            topic.partitions = count;
            next.topics.insert(name, Arc::new(topic));
        }
        AdminOp::AlterConfigs {
            name,
            changes,
            replace,
            validate_only,
        } => {
            let Some(topic) = current.get(&name) else {
                return Err(refuse(
                    ResponseError::UnknownTopicOrPartition,
                    format!("no topic {name}"),
                ));
            };
            let mut topic = topic.as_ref().clone();
            topic.configs = config
                .altered_topic_configs(&topic.configs, changes, replace)
                .map_err(|e| refuse(ResponseError::InvalidConfig, e.to_string()))?;
            if validate_only {
                return Ok(None);
            }
            next.topics.insert(name, Arc::new(topic));
        }
        AdminOp::AlterBrokerConfigs {
            target,
            changes,
            replace,
            validate_only,
        } => {
            next.broker_configs = current
                .broker_configs
                .altered(config, target, changes, replace)
                .map_err(|e| {
                    let code = if e.is_invalid_value() {
                        ResponseError::InvalidConfig
                    } else {
                        ResponseError::InvalidRequest
                    };
                    refuse(code, e.to_string())
                })?;
            if validate_only {
                return Ok(None);
            }
            // Fresh copies parse their configs again, against the new defaults.
            for topic in next.topics.values_mut() {
                *topic = Arc::new(topic.as_ref().clone());
            }
        }
        AdminOp::AlterGroupConfigs {
            group,
            changes,
            replace,
            validate_only,
        } => {
            next.group_configs = current
                .group_configs
                .altered(config, &group, changes, replace)
                .map_err(|e| {
                    let code = match e {
                        GroupConfigError::TooMany => ResponseError::PolicyViolation,
                        _ => ResponseError::InvalidConfig,
                    };
                    refuse(code, e.to_string())
                })?;
            if validate_only {
                return Ok(None);
            }
        }
        AdminOp::AlterClientMetricsConfigs {
            name,
            changes,
            replace,
            validate_only,
        } => {
            next.client_metrics = current
                .client_metrics
                .altered(&name, changes, replace)
                .map_err(|e| {
                    let code = match e {
                        ClientMetricsConfigError::TooMany => ResponseError::PolicyViolation,
                        ref e if e.is_invalid_value() => ResponseError::InvalidConfig,
                        _ => ResponseError::InvalidRequest,
                    };
                    refuse(code, e.to_string())
                })?;
            if validate_only {
                return Ok(None);
            }
        }
        AdminOp::AlterScramCredentials { changes } => {
            for (user, mechanism, credential) in changes {
                match credential {
                    Some(c) => {
                        next.scram_credentials
                            .entry(user)
                            .or_default()
                            .insert(mechanism, c);
                    }
                    None => {
                        if let Some(set) = next.scram_credentials.get_mut(&user) {
                            set.remove(&mechanism);
                            if set.is_empty() {
                                next.scram_credentials.remove(&user);
                            }
                        }
                    }
                }
            }
            if next.scram_credentials.len() > crate::security::scram::USERS_MAX {
                return Err(refuse(
                    ResponseError::PolicyViolation,
                    format!(
                        "at most {} users with SCRAM credentials",
                        crate::security::scram::USERS_MAX
                    ),
                ));
            }
        }
        AdminOp::PutDelegationToken {
            id,
            token,
            new,
            now_ms,
        } => {
            use crate::security::delegation_tokens::TOKENS_MAX;
            let tokens = &mut next.delegation_tokens;
            tokens.retain(|_, t| !t.expired(now_ms));
            if !new && !tokens.contains_key(&id) {
                return Err(refuse(
                    ResponseError::DelegationTokenNotFound,
                    "the token expired or was expired meanwhile",
                ));
            }
            match token {
                Some(t) => {
                    tokens.insert(id, t);
                }
                None => {
                    tokens.remove(&id);
                }
            }
            if tokens.len() > TOKENS_MAX {
                return Err(refuse(
                    ResponseError::PolicyViolation,
                    format!("at most {TOKENS_MAX} delegation tokens"),
                ));
            }
        }
        AdminOp::AlterClientQuotas {
            changes,
            ip_changes,
        } => {
            for (entity, key, value) in changes {
                next.client_quotas
                    .set(&entity, key, value)
                    .map_err(|e| refuse(ResponseError::InvalidRequest, e.to_string()))?;
            }
            for (ip, value) in ip_changes {
                next.ip_quotas
                    .set(&ip, value)
                    .map_err(|e| refuse(ResponseError::InvalidRequest, e.to_string()))?;
            }
        }
        AdminOp::AlterAcls { create, delete } => {
            for acl in create {
                next.acls.insert(acl);
            }
            for acl in &delete {
                next.acls.remove(acl);
            }
            if next.acls.len() > crate::security::acl::ACLS_MAX {
                return Err(refuse(
                    ResponseError::PolicyViolation,
                    format!("at most {} ACLs", crate::security::acl::ACLS_MAX),
                ));
            }
        }
    }
    Ok(Some(next))
}
