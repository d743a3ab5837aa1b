//! Topic changes in a cluster: validated like a one-node broker's (the same
//! `plan`), then carried out through the metadata quorum, and answered once
//! this broker's shards have applied the committed change (as Kafka brokers
//! forward admin requests to the active controller).

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::admin::{check_op_assignments, plan};
use super::*;
use crate::broker_configs::BrokerConfigs;
use crate::controller::image::Configs;
use crate::controller::placement::{live_candidates, place_replicas};
use crate::controller::records::{ConfigChange, ConfigResource, MetadataRecord};
use crate::controller::{Controller, ControllerError};
use crate::metadata::TopicMeta;

/// How often an admin request looks whether its change reached the shards.
const APPLIED_POLL: Duration = Duration::from_millis(2);

fn refuse(code: i16, message: impl Into<String>) -> AdminOutcome {
    AdminOutcome {
        error: code,
        message: Some(message.into()),
    }
}

fn controller_refusal(e: &ControllerError) -> AdminOutcome {
    refuse(e.error_code(), e.to_string())
}

impl Shard {
    pub(super) async fn admin_cluster(
        self: &Rc<Self>,
        controller: &Controller,
        current: &Topics,
        op: AdminOp,
    ) -> AdminOutcome {
        // The replicas the request names, for the one topic it names.
        let (replication_factor, assignments) = match &op {
            AdminOp::CreateTopic {
                name,
                replication_factor,
                assignments,
                ..
            } => (
                *replication_factor,
                assignments.clone().map(|a| (name.clone(), a)),
            ),
            AdminOp::CreatePartitions {
                name, assignments, ..
            } => (-1, assignments.clone().map(|a| (name.clone(), a))),
            _ => (-1, None),
        };
        let (_, image) = controller.image();
        let registered = |b: i32| image.brokers.contains_key(&b);
        let replicas_of = |topic: &str| image.partition(topic, 0).map_or(0, |p| p.replicas.len());
        if let Err(refused) = check_op_assignments(current, &op, registered, replicas_of) {
            return refused;
        }
        let next = match plan(&self.config, current, op) {
            Ok(Some(next)) => next,
            Ok(None) => return ok_outcome(),
            Err(refused) => return refused,
        };
        let records =
            match self.records_for(controller, current, &next, replication_factor, assignments) {
                Ok(records) => records,
                Err(refused) => return refused,
            };
        let mut last_index = 0;
        for record in records {
            match controller.propose(record).await {
                Ok((index, _)) => last_index = index,
                Err(e) => return controller_refusal(&e),
            }
        }
        self.wait_applied(last_index).await
    }

    /// The metadata records that turn `current` into `next`; `assignments`:
    /// the replicas the request named for one topic's new partitions.
    fn records_for(
        &self,
        controller: &Controller,
        current: &Topics,
        next: &Topics,
        replication_factor: i32,
        mut assignments: Option<(String, Vec<Vec<i32>>)>,
    ) -> Result<Vec<MetadataRecord>, AdminOutcome> {
        let (_, image) = controller.image();
        let brokers = live_candidates(&image);
        let new_factor = if replication_factor < 0 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        // Partitions added to a topic get as many replicas as its others.
        let factor_of = |name: &str| {
            image.partition(name, 0).map_or(new_factor, |p| {
                i32::try_from(p.replicas.len()).unwrap_or(i32::MAX)
            })
        };
        let place = |partitions: i32, start: usize, factor: i32| {
            place_replicas(&brokers, partitions, factor, start)
                .map_err(|e| refuse(e.error_code(), e.to_string()))
        };
        let mut records = Vec::new();
        for (name, topic) in &next.topics {
            let given = assignments
                .take_if(|(named, _)| named == name)
                .map(|(_, a)| a);
            match current.get(name) {
                None => records.push(MetadataRecord::CreateTopic {
                    name: name.clone(),
                    id: topic.uuid(),
                    configs: topic.configs.clone().into_iter().collect(),
                    assignments: match given {
                        Some(given) => given,
                        None => place(topic.partitions, placement_start(name), new_factor)?,
                    },
                }),
                Some(old) => {
                    let place_added =
                        |partitions: i32, start: usize| place(partitions, start, factor_of(name));
                    records.extend(changes(old, topic, given, &place_added)?)
                }
            }
        }
        for name in current.topics.keys() {
            if !next.topics.contains_key(name) {
                records.push(MetadataRecord::DeleteTopic { name: name.clone() });
            }
        }
        records.extend(broker_config_records(
            &current.broker_configs,
            &next.broker_configs,
        ));
        records.extend(named_config_records(
            current.group_configs.iter(),
            next.group_configs.iter(),
            ConfigResource::Group,
        ));
        records.extend(named_config_records(
            current.client_metrics.iter(),
            next.client_metrics.iter(),
            ConfigResource::ClientMetrics,
        ));
        records.extend(scram_credential_records(
            &current.scram_credentials,
            &next.scram_credentials,
        ));
        records.extend(client_quota_records(
            &current.client_quotas,
            &next.client_quotas,
        ));
        records.extend(ip_quota_records(&current.ip_quotas, &next.ip_quotas));
        records.extend(acl_records(&current.acls, &next.acls));
        records.extend(delegation_token_records(
            &current.delegation_tokens,
            &next.delegation_tokens,
        ));
        Ok(records)
    }

    /// A read barrier (Raft's read index): waits until this broker has
    /// applied every metadata record the active controller had applied
    /// when asked. Kafka's brokers need none, as their controller computes
    /// each change itself.
    pub(super) async fn catch_up(&self, controller: &Controller) -> Result<(), AdminOutcome> {
        let status = controller
            .describe_quorum()
            .await
            .map_err(|e| controller_refusal(&e))?;
        // The next index after the leader's last applied one.
        let applied = u64::try_from(status.high_watermark - 1).unwrap_or(0);
        let outcome = self.wait_applied(applied).await;
        if outcome.error == 0 {
            Ok(())
        } else {
            Err(outcome)
        }
    }

    /// Waits (bounded) until this shard's snapshot reflects log index
    /// `index`; shard 0 applies a new image only after every shard has.
    async fn wait_applied(&self, index: u64) -> AdminOutcome {
        let deadline =
            Instant::now() + Duration::from_millis(self.config.metadata_propose_timeout_ms);
        while self.topics().version < index {
            if Instant::now() >= deadline {
                return refuse(
                    ResponseError::RequestTimedOut.code(),
                    "committed, but not yet applied on this broker",
                );
            }
            crate::runtime::sleep(APPLIED_POLL).await;
        }
        ok_outcome()
    }
}

fn ok_outcome() -> AdminOutcome {
    AdminOutcome {
        error: 0,
        message: None,
    }
}

/// Where a topic's first leader goes: spread by name, so topics do not all
/// start on the same broker (Kafka picks at random).
fn placement_start(name: &str) -> usize {
    crate::metadata::owner_shard(name, 0, usize::MAX)
}

/// Records for a topic that exists in both snapshots: added partitions
/// (on `given` replicas, else placed) and changed configs.
fn changes(
    old: &TopicMeta,
    new: &TopicMeta,
    given: Option<Vec<Vec<i32>>>,
    place: &impl Fn(i32, usize) -> Result<Vec<Vec<i32>>, AdminOutcome>,
) -> Result<Vec<MetadataRecord>, AdminOutcome> {
    let mut records = Vec::new();
    if new.partitions > old.partitions {
        let added = new.partitions - old.partitions;
        let assignments = match given {
            Some(given) => given,
            None => place(added, placement_start(&new.name) + old.partitions as usize)?,
        };
        records.push(MetadataRecord::CreatePartitions {
            topic: new.name.clone(),
            assignments,
        });
    }
    let config_changes = config_diff(&old.configs, &new.configs);
    if !config_changes.is_empty() {
        records.push(MetadataRecord::AlterConfigs {
            resource: ConfigResource::Topic(new.name.clone()),
            changes: config_changes,
        });
    }
    Ok(records)
}

/// The changes that turn config set `old` into `new`.
fn config_diff(
    old: &std::collections::BTreeMap<String, String>,
    new: &std::collections::BTreeMap<String, String>,
) -> Vec<ConfigChange> {
    let mut changes: Vec<ConfigChange> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| ConfigChange {
            name: k.clone(),
            value: Some(v.clone()),
        })
        .collect();
    changes.extend(
        old.keys()
            .filter(|k| !new.contains_key(*k))
            .map(|k| ConfigChange {
                name: k.clone(),
                value: None,
            }),
    );
    changes
}

/// The records that turn one ACL set into another: removals first, so a
/// set at its bound can take a change that removes as much as it adds.
fn acl_records(
    old: &crate::security::acl::Acls,
    new: &crate::security::acl::Acls,
) -> Vec<MetadataRecord> {
    let removed = old
        .iter()
        .filter(|acl| !new.contains(acl))
        .map(|acl| MetadataRecord::RemoveAccessControlEntry { acl });
    let added = new
        .iter()
        .filter(|acl| !old.contains(acl))
        .map(|acl| MetadataRecord::AccessControlEntry { acl });
    removed.chain(added).collect()
}

/// The records that turn one set of SCRAM credentials into another.
/// The records that turn one set of delegation tokens into another: one
/// per token made, changed or removed.
fn delegation_token_records(
    old: &crate::security::delegation_tokens::DelegationTokens,
    new: &crate::security::delegation_tokens::DelegationTokens,
) -> Vec<MetadataRecord> {
    let removed =
        old.keys()
            .filter(|id| !new.contains_key(*id))
            .map(|id| MetadataRecord::DelegationToken {
                id: id.clone(),
                token: None,
            });
    let set = new
        .iter()
        .filter(|(id, token)| old.get(*id) != Some(*token))
        .map(|(id, token)| MetadataRecord::DelegationToken {
            id: id.clone(),
            token: Some(token.clone()),
        });
    removed.chain(set).collect()
}

fn scram_credential_records(
    old: &crate::security::scram::Credentials,
    new: &crate::security::scram::Credentials,
) -> Vec<MetadataRecord> {
    let empty = Default::default();
    let users: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut records = Vec::new();
    for user in users {
        let (was, is) = (
            old.get(user).unwrap_or(&empty),
            new.get(user).unwrap_or(&empty),
        );
        for mechanism in crate::security::scram::Mechanism::ALL {
            let (before, after) = (was.get(&mechanism), is.get(&mechanism));
            if before != after {
                records.push(MetadataRecord::ScramCredential {
                    user: user.clone(),
                    mechanism,
                    credential: after.cloned(),
                });
            }
        }
    }
    records
}

/// The records that turn one set of client quotas into another: one per
/// key changed (Kafka's ClientQuotaRecords).
fn client_quota_records(
    old: &crate::quota::ClientQuotas,
    new: &crate::quota::ClientQuotas,
) -> Vec<MetadataRecord> {
    let entities: std::collections::BTreeSet<&crate::quota::QuotaEntity> =
        old.iter().chain(new.iter()).map(|(e, _)| e).collect();
    let mut records = Vec::new();
    for entity in entities {
        for key in crate::quota::QuotaKey::ALL {
            let before = old.get(entity).and_then(|v| v.get(key));
            let after = new.get(entity).and_then(|v| v.get(key));
            if before != after {
                records.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key,
                    value: after,
                });
            }
        }
    }
    records
}

/// The records that turn one set of ip quotas into another: one per ip
/// changed.
fn ip_quota_records(
    old: &crate::quota::IpQuotas,
    new: &crate::quota::IpQuotas,
) -> Vec<MetadataRecord> {
    let ips: std::collections::BTreeSet<&crate::quota::EntityName> =
        old.iter().chain(new.iter()).map(|(ip, _)| ip).collect();
    ips.into_iter()
        .filter(|ip| old.get(ip) != new.get(ip))
        .map(|ip| MetadataRecord::IpQuota {
            ip: ip.clone(),
            value: new.get(ip),
        })
        .collect()
}

/// Records for changed dynamic broker configs: one per resource changed.
fn broker_config_records(old: &BrokerConfigs, new: &BrokerConfigs) -> Vec<MetadataRecord> {
    let empty = Default::default();
    let mut resources = vec![(
        ConfigResource::ClusterDefault,
        &old.cluster_default,
        &new.cluster_default,
    )];
    let ids: std::collections::BTreeSet<&String> =
        old.per_broker.keys().chain(new.per_broker.keys()).collect();
    for id in ids {
        let Ok(broker) = id.parse::<i32>() else {
            continue;
        };
        resources.push((
            ConfigResource::Broker(broker),
            old.per_broker.get(id).unwrap_or(&empty),
            new.per_broker.get(id).unwrap_or(&empty),
        ));
    }
    resources
        .into_iter()
        .filter_map(|(resource, old, new)| {
            let changes = config_diff(old, new);
            (!changes.is_empty()).then_some(MetadataRecord::AlterConfigs { resource, changes })
        })
        .collect()
}

/// Records for changed named config sets (groups' configs, client
/// metrics subscriptions): one per set changed, for `resource` of its name.
fn named_config_records<'a>(
    old: impl Iterator<Item = (&'a String, &'a Configs)>,
    new: impl Iterator<Item = (&'a String, &'a Configs)>,
    resource: fn(String) -> ConfigResource,
) -> Vec<MetadataRecord> {
    let old: std::collections::BTreeMap<_, _> = old.collect();
    let new: std::collections::BTreeMap<_, _> = new.collect();
    let empty = Configs::default();
    let names: std::collections::BTreeSet<&String> =
        old.keys().chain(new.keys()).copied().collect();
    names
        .into_iter()
        .filter_map(|name| {
            let changes = config_diff(
                old.get(name).copied().unwrap_or(&empty),
                new.get(name).copied().unwrap_or(&empty),
            );
            (!changes.is_empty()).then(|| MetadataRecord::AlterConfigs {
                resource: resource(name.clone()),
                changes,
            })
        })
        .collect()
}
