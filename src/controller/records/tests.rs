use super::*;
use crate::controller::image::Reassignment;

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn register(id: i32, incarnation: u128) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        id,
        incarnation: uuid(incarnation),
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092 + id as u16,
        }],
        rack: None,
    }
}

/// Three registered, unfenced brokers.
fn cluster() -> ClusterImage {
    let mut image = ClusterImage::default();
    for id in 1..=3 {
        apply(&mut image, &register(id, id as u128)).unwrap();
        let unfence = MetadataRecord::UnfenceBroker {
            id,
            incarnation: uuid(id as u128),
        };
        assert_eq!(apply(&mut image, &unfence), Ok(RecordOutcome::Applied));
    }
    image
}

/// Sets partition `p` of topic "t" to `leader` and `isr`, as elections and
/// ISR changes would have left it.
fn set_partition(image: &mut ClusterImage, p: usize, leader: i32, isr: &[i32]) {
    let state = &mut image.topics.get_mut("t").unwrap().partitions[p];
    state.leader = leader;
    state.isr = isr.to_vec();
}

fn create(name: &str, id: u128, assignments: Vec<Vec<i32>>) -> MetadataRecord {
    MetadataRecord::CreateTopic {
        name: name.into(),
        id: uuid(id),
        configs: Configs::new(),
        assignments,
    }
}

fn change(leader: i32, isr: &[i32], leader_epoch: i32, partition_epoch: i32) -> MetadataRecord {
    MetadataRecord::ChangePartition {
        topic: "t".into(),
        partition: 0,
        leader,
        isr: isr.to_vec(),
        leader_epoch,
        partition_epoch,
    }
}

#[test]
fn a_new_incarnation_starts_fenced_and_a_retry_changes_nothing() {
    let mut image = cluster();
    assert_eq!(
        apply(&mut image, &register(1, 1)),
        Ok(RecordOutcome::Unchanged)
    );
    assert!(!image.brokers[&1].fenced);
    apply(&mut image, &register(1, 99)).unwrap();
    assert!(image.brokers[&1].fenced);
    let stale = MetadataRecord::UnfenceBroker {
        id: 1,
        incarnation: uuid(1),
    };
    assert_eq!(
        apply(&mut image, &stale),
        Err(RecordError::StaleIncarnation(1))
    );
    let fence = MetadataRecord::FenceBroker { id: 1 };
    assert_eq!(apply(&mut image, &fence), Ok(RecordOutcome::Unchanged));
    assert_eq!(
        apply(&mut image, &MetadataRecord::FenceBroker { id: 7 }),
        Err(RecordError::UnknownBroker(7))
    );
}

#[test]
fn create_topic_leads_with_the_first_live_replica() {
    let mut image = cluster();
    apply(&mut image, &MetadataRecord::FenceBroker { id: 2 }).unwrap();
    apply(
        &mut image,
        &create("t", 1, vec![vec![2, 3, 1], vec![1, 2, 3]]),
    )
    .unwrap();
    let p0 = image.partition("t", 0).unwrap();
    assert_eq!((p0.leader, p0.isr.clone()), (3, vec![3, 1]));
    assert_eq!(image.partition("t", 1).unwrap().leader, 1);
    assert_eq!(image.topic_ids[&uuid(1)], "t");
}

#[test]
fn create_topic_refusals_change_nothing() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1]])).unwrap();
    let before = image.clone();
    let cases = [
        (
            create("t", 2, vec![vec![1]]),
            RecordError::TopicExists("t".into()),
        ),
        (
            create("u", 1, vec![vec![1]]),
            RecordError::TopicIdInUse(uuid(1)),
        ),
        (
            create("a/b", 3, vec![vec![1]]),
            RecordError::InvalidTopicName("a/b".into()),
        ),
    ];
    for (record, error) in cases {
        assert_eq!(apply(&mut image, &record), Err(error));
    }
    for bad in [
        vec![vec![1, 1]],
        vec![vec![9]],
        vec![vec![1], vec![1, 2]],
        vec![vec![]],
    ] {
        let refused = apply(&mut image, &create("u", 4, bad));
        assert!(
            matches!(refused, Err(RecordError::InvalidAssignment(_))),
            "{refused:?}"
        );
    }
    assert!(apply(&mut image, &create("u", 4, vec![])).is_err());
    assert_eq!(image, before);
}

#[test]
fn delete_and_create_partitions() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1, 2]])).unwrap();
    let more = MetadataRecord::CreatePartitions {
        topic: "t".into(),
        assignments: vec![vec![2, 3], vec![3, 1]],
    };
    apply(&mut image, &more).unwrap();
    assert_eq!(image.topics["t"].partitions.len(), 3);
    assert_eq!(image.partition("t", 2).unwrap().replicas, vec![3, 1]);
    apply(
        &mut image,
        &MetadataRecord::DeleteTopic { name: "t".into() },
    )
    .unwrap();
    assert!(image.topics.is_empty() && image.topic_ids.is_empty());
    let again = MetadataRecord::DeleteTopic { name: "t".into() };
    assert_eq!(
        apply(&mut image, &again),
        Err(RecordError::UnknownTopic("t".into()))
    );
}

#[test]
fn alter_configs_sets_and_removes() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1]])).unwrap();
    let set = |resource, value: Option<&str>| MetadataRecord::AlterConfigs {
        resource,
        changes: vec![ConfigChange {
            name: "retention.ms".into(),
            value: value.map(str::to_string),
        }],
    };
    apply(
        &mut image,
        &set(ConfigResource::Topic("t".into()), Some("5")),
    )
    .unwrap();
    assert_eq!(image.topics["t"].configs["retention.ms"], "5");
    apply(&mut image, &set(ConfigResource::ClusterDefault, Some("7"))).unwrap();
    assert_eq!(image.broker_configs[&None]["retention.ms"], "7");
    apply(&mut image, &set(ConfigResource::ClusterDefault, None)).unwrap();
    assert!(image.broker_configs.is_empty());
    let unknown = set(ConfigResource::Topic("x".into()), Some("1"));
    assert!(apply(&mut image, &unknown).is_err());
}

#[test]
fn change_partition_checks_epochs_like_alter_partition() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1, 2, 3]])).unwrap();
    // ISR shrink by the leader: same leader epoch, partition epoch 0 -> 1.
    assert_eq!(
        apply(&mut image, &change(1, &[1, 2], 0, 0)),
        Ok(RecordOutcome::Applied)
    );
    let p = image.partition("t", 0).unwrap().clone();
    assert_eq!((p.isr.clone(), p.partition_epoch), (vec![1, 2], 1));
    assert_eq!(
        apply(&mut image, &change(1, &[1], 0, 0)),
        Err(RecordError::StalePartitionEpoch {
            current: 1,
            proposed: 0
        })
    );
    // A new leader needs a new leader epoch.
    assert!(matches!(
        apply(&mut image, &change(2, &[2], 0, 1)),
        Err(RecordError::InvalidLeaderEpoch { .. })
    ));
    for bad in [
        change(2, &[1], 1, 1),
        change(4, &[4], 1, 1),
        change(1, &[], 1, 1),
    ] {
        assert!(matches!(
            apply(&mut image, &bad),
            Err(RecordError::InvalidPartitionChange(_))
        ));
    }
    apply(&mut image, &change(2, &[2], 1, 1)).unwrap();
    let p = image.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
    apply(&mut image, &change(NO_LEADER, &[2], 2, 2)).unwrap();
    assert_eq!(image.partition("t", 0).unwrap().leader, NO_LEADER);
}

#[test]
fn a_fenced_broker_does_not_join_an_isr_but_may_stay() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1, 2, 3]])).unwrap();
    apply(&mut image, &change(1, &[1, 2], 0, 0)).unwrap();
    apply(&mut image, &MetadataRecord::FenceBroker { id: 3 }).unwrap();
    assert!(matches!(
        apply(&mut image, &change(1, &[1, 2, 3], 0, 1)),
        Err(RecordError::InvalidPartitionChange(_))
    ));
    // Already in the ISR, it is not refused (the controller takes it out).
    apply(&mut image, &MetadataRecord::FenceBroker { id: 2 }).unwrap();
    assert_eq!(
        apply(&mut image, &change(1, &[1, 2], 0, 1)),
        Ok(RecordOutcome::Applied)
    );
}

#[test]
fn producer_id_blocks_do_not_overlap() {
    let mut image = cluster();
    let alloc = |broker, count| MetadataRecord::AllocateProducerIds { broker, count };
    assert_eq!(
        apply(&mut image, &alloc(1, 1000)),
        Ok(RecordOutcome::ProducerIds {
            first: 0,
            count: 1000
        })
    );
    assert_eq!(
        apply(&mut image, &alloc(2, 10)),
        Ok(RecordOutcome::ProducerIds {
            first: 1000,
            count: 10
        })
    );
    assert_eq!(
        apply(&mut image, &alloc(9, 1)),
        Err(RecordError::UnknownBroker(9))
    );
    assert_eq!(
        apply(&mut image, &alloc(1, 0)),
        Err(RecordError::InvalidProducerIdCount(0))
    );
    image.next_producer_id = i64::MAX - 5;
    assert_eq!(
        apply(&mut image, &alloc(1, 10)),
        Err(RecordError::ProducerIdsExhausted)
    );
}

#[test]
fn records_round_trip_through_the_codec() {
    let record = create("t", 5, vec![vec![1, 2]]);
    let bytes = postcard::to_allocvec(&record).unwrap();
    assert_eq!(
        postcard::from_bytes::<MetadataRecord>(&bytes).unwrap(),
        record
    );
    let image = cluster();
    let bytes = postcard::to_allocvec(&image).unwrap();
    assert_eq!(postcard::from_bytes::<ClusterImage>(&bytes).unwrap(), image);
}

/// SCRAM credentials (issue 15): set, replaced, deleted; an empty user
/// refused; a deletion of nothing changes nothing.
#[test]
fn scram_credentials_apply() {
    use crate::security::scram::{Credential, Mechanism};
    let mut image = ClusterImage::default();
    let c = Credential::from_salted(Mechanism::Sha512, b"salted", b"salt".to_vec(), 4096);
    let set = |user: &str, credential: Option<Credential>| MetadataRecord::ScramCredential {
        user: user.into(),
        mechanism: Mechanism::Sha512,
        credential,
    };
    assert_eq!(
        apply(&mut image, &set("alice", Some(c.clone()))),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(image.scram_credentials["alice"][&Mechanism::Sha512], c);
    assert!(apply(&mut image, &set("", Some(c.clone()))).is_err());
    assert_eq!(
        apply(&mut image, &set("bob", None)),
        Ok(RecordOutcome::Unchanged)
    );
    assert_eq!(
        apply(&mut image, &set("alice", None)),
        Ok(RecordOutcome::Applied)
    );
    assert!(image.scram_credentials.is_empty());
}

/// A token is set, changed and removed by its id; a removal of nothing
/// changes nothing.
#[test]
fn delegation_tokens_apply() {
    use crate::security::delegation_tokens::DelegationToken;
    let mut image = ClusterImage::default();
    let token = |expiry_ms| DelegationToken {
        owner: "User:alice".into(),
        requester: "User:alice".into(),
        renewers: vec!["User:bob".into()],
        issue_ms: 0,
        expiry_ms,
        max_ms: 100,
        credentials: Default::default(),
    };
    let set = |t: Option<DelegationToken>| MetadataRecord::DelegationToken {
        id: "t".into(),
        token: t,
    };
    assert_eq!(
        apply(&mut image, &set(Some(token(10)))),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(
        apply(&mut image, &set(Some(token(20)))),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(image.delegation_tokens["t"].expiry_ms, 20);
    assert_eq!(apply(&mut image, &set(None)), Ok(RecordOutcome::Applied));
    assert_eq!(apply(&mut image, &set(None)), Ok(RecordOutcome::Unchanged));
    assert!(image.delegation_tokens.is_empty());
}

/// A snapshot of every older image layout still loads through
/// `image::decode`, the fields it did not have left empty.
#[test]
fn images_of_every_older_layout_decode() {
    use crate::quota::{EntityName, QuotaEntity, QuotaKey};
    use crate::security::acl::{AclBinding, AclEntry, Operation, PatternType, Permission};
    use crate::security::acl::{ResourcePattern, ResourceType};
    use crate::security::scram::{Credential, Mechanism};
    let mut image = cluster();
    image.next_producer_id = 42;
    let records = [
        MetadataRecord::ScramCredential {
            user: "alice".into(),
            mechanism: Mechanism::Sha512,
            credential: Some(Credential::from_salted(
                Mechanism::Sha512,
                b"salted",
                b"salt".to_vec(),
                4096,
            )),
        },
        MetadataRecord::ClientQuota {
            entity: QuotaEntity {
                user: Some(EntityName::Default),
                client_id: None,
            },
            key: QuotaKey::ProducerByteRate,
            value: Some(1024.0),
        },
        MetadataRecord::AccessControlEntry {
            acl: AclBinding {
                pattern: ResourcePattern {
                    resource_type: ResourceType::Topic,
                    pattern_type: PatternType::Literal,
                    name: "logs".into(),
                },
                entry: AclEntry {
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: Operation::Read,
                    permission: Permission::Allow,
                },
            },
        },
        MetadataRecord::IpQuota {
            ip: EntityName::Name("192.0.2.1".into()),
            value: Some(5.0),
        },
    ];
    for record in &records {
        assert_eq!(apply(&mut image, record), Ok(RecordOutcome::Applied));
    }
    let directory = MetadataRecord::VoterDirectory {
        node: 1,
        directory_id: Uuid::from_u128(7),
    };
    assert_eq!(apply(&mut image, &directory), Ok(RecordOutcome::Applied));
    assert_eq!(apply(&mut image, &directory), Ok(RecordOutcome::Unchanged));
    let group_config = MetadataRecord::AlterConfigs {
        resource: ConfigResource::Group("g".into()),
        changes: vec![ConfigChange {
            name: "share.auto.offset.reset".into(),
            value: Some("earliest".into()),
        }],
    };
    assert_eq!(apply(&mut image, &group_config), Ok(RecordOutcome::Applied));
    assert!(!image.group_configs.is_empty());
    let token = MetadataRecord::DelegationToken {
        id: "t1".into(),
        token: Some(crate::security::delegation_tokens::DelegationToken {
            owner: "User:alice".into(),
            requester: "User:alice".into(),
            renewers: Vec::new(),
            issue_ms: 1,
            expiry_ms: 2,
            max_ms: 3,
            credentials: Default::default(),
        }),
    };
    assert_eq!(apply(&mut image, &token), Ok(RecordOutcome::Applied));
    assert_eq!(apply(&mut image, &token), Ok(RecordOutcome::Unchanged));
    let subscription = MetadataRecord::AlterConfigs {
        resource: ConfigResource::ClientMetrics("s".into()),
        changes: vec![ConfigChange {
            name: "metrics".into(),
            value: Some("*".into()),
        }],
    };
    assert_eq!(apply(&mut image, &subscription), Ok(RecordOutcome::Applied));
    assert!(!image.client_metrics.is_empty());
    let decode = |bytes: Vec<u8>| super::super::image::decode(&bytes).unwrap();
    // postcard writes a struct as its fields in order: each older layout
    // is a prefix of the fields.
    let first = (
        &image.brokers,
        &image.topics,
        &image.topic_ids,
        &image.broker_configs,
        image.next_producer_id,
    );
    image.reassignments.entry("t".into()).or_default().insert(
        0,
        Reassignment {
            adding: vec![3],
            removing: vec![1],
        },
    );
    image.lost_isrs.entry("t".into()).or_default().insert(0);
    let mut expected = image.clone();
    expected.client_metrics = Default::default();
    let before_client_metrics = (
        first,
        &image.scram_credentials,
        &image.client_quotas,
        &image.acls,
        &image.ip_quotas,
        &image.reassignments,
        &image.voter_directories,
        &image.lost_isrs,
        &image.isr_departures,
        &image.group_configs,
        &image.delegation_tokens,
    );
    assert_eq!(
        decode(postcard::to_allocvec(&before_client_metrics).unwrap()),
        expected
    );
    expected.delegation_tokens = Default::default();
    let before_delegation_tokens = (
        first,
        &image.scram_credentials,
        &image.client_quotas,
        &image.acls,
        &image.ip_quotas,
        &image.reassignments,
        &image.voter_directories,
        &image.lost_isrs,
        &image.isr_departures,
        &image.group_configs,
    );
    assert_eq!(
        decode(postcard::to_allocvec(&before_delegation_tokens).unwrap()),
        expected
    );
    expected.group_configs = Default::default();
    let before_group_configs = (
        first,
        &image.scram_credentials,
        &image.client_quotas,
        &image.acls,
        &image.ip_quotas,
        &image.reassignments,
        &image.voter_directories,
        &image.lost_isrs,
        &image.isr_departures,
    );
    assert_eq!(
        decode(postcard::to_allocvec(&before_group_configs).unwrap()),
        expected
    );
    expected.lost_isrs = Default::default();
    let before_lost_isrs = (
        first,
        &image.scram_credentials,
        &image.client_quotas,
        &image.acls,
        &image.ip_quotas,
        &image.reassignments,
        &image.voter_directories,
    );
    assert_eq!(
        decode(postcard::to_allocvec(&before_lost_isrs).unwrap()),
        expected
    );
    expected.voter_directories = Default::default();
    let before_voter_directories = (
        first,
        &image.scram_credentials,
        &image.client_quotas,
        &image.acls,
        &image.ip_quotas,
        &image.reassignments,
    );
    assert_eq!(
        decode(postcard::to_allocvec(&before_voter_directories).unwrap()),
        expected
    );
    expected.reassignments = Default::default();
    let before_reassignments = (
        first,
        &image.scram_credentials,
        &image.client_quotas,
        &image.acls,
        &image.ip_quotas,
    );
    assert_eq!(
        decode(postcard::to_allocvec(&before_reassignments).unwrap()),
        expected
    );
    expected.ip_quotas = Default::default();
    let before_ip_quotas = (
        first,
        &image.scram_credentials,
        &image.client_quotas,
        &image.acls,
    );
    assert_eq!(
        decode(postcard::to_allocvec(&before_ip_quotas).unwrap()),
        expected
    );
    expected.client_quotas = Default::default();
    expected.acls = Default::default();
    let before_security = (first, &image.scram_credentials);
    assert_eq!(
        decode(postcard::to_allocvec(&before_security).unwrap()),
        expected
    );
    expected.scram_credentials = Default::default();
    assert_eq!(decode(postcard::to_allocvec(&first).unwrap()), expected);
    assert_ne!(
        expected,
        ClusterImage::default(),
        "the oldest layout is not empty"
    );
    assert_eq!(decode(postcard::to_allocvec(&image).unwrap()), image);
}

/// ClientQuota records set and remove one key of one entity; an invalid
/// value is refused the same way on every node.
#[test]
fn client_quota_records_set_and_remove_keys() {
    use crate::quota::{EntityName, QuotaEntity, QuotaKey};
    let mut image = cluster();
    let entity = QuotaEntity {
        user: Some(EntityName::Default),
        client_id: Some(EntityName::Name("app".into())),
    };
    let set = |value| MetadataRecord::ClientQuota {
        entity: entity.clone(),
        key: QuotaKey::ProducerByteRate,
        value,
    };
    assert_eq!(
        apply(&mut image, &set(Some(1024.0))),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(
        apply(&mut image, &set(Some(1024.0))),
        Ok(RecordOutcome::Unchanged)
    );
    assert_eq!(
        image
            .client_quotas
            .resolve(QuotaKey::ProducerByteRate, "anyone", "app")
            .map(|a| a.quota),
        Some(1024.0)
    );
    assert!(apply(&mut image, &set(Some(1.5))).is_err());
    assert!(apply(&mut image, &set(Some(-1.0))).is_err());
    assert_eq!(apply(&mut image, &set(None)), Ok(RecordOutcome::Applied));
    assert!(image.client_quotas.is_empty());
}

/// IpQuota records set and remove an ip's connection rate; a fractional
/// rate is refused the same way on every node.
#[test]
fn ip_quota_records_set_and_remove_rates() {
    use crate::quota::EntityName;
    let mut image = cluster();
    let ip = EntityName::Name("192.0.2.1".into());
    let set = |value| MetadataRecord::IpQuota {
        ip: ip.clone(),
        value,
    };
    assert_eq!(
        apply(&mut image, &set(Some(5.0))),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(
        apply(&mut image, &set(Some(5.0))),
        Ok(RecordOutcome::Unchanged)
    );
    assert_eq!(image.ip_quotas.resolve("192.0.2.1"), Some(5.0));
    assert!(apply(&mut image, &set(Some(1.5))).is_err());
    assert_eq!(apply(&mut image, &set(None)), Ok(RecordOutcome::Applied));
    assert!(image.ip_quotas.is_empty());
}

/// ACLs (issue 15): added once, a second add changes nothing, removed.
#[test]
fn acls_apply() {
    use crate::security::acl::{AclBinding, AclEntry, Operation, PatternType, Permission};
    use crate::security::acl::{ResourcePattern, ResourceType};
    let mut image = cluster();
    let acl = AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            pattern_type: PatternType::Prefixed,
            name: "logs-".into(),
        },
        entry: AclEntry {
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        },
    };
    let add = MetadataRecord::AccessControlEntry { acl: acl.clone() };
    let remove = MetadataRecord::RemoveAccessControlEntry { acl: acl.clone() };
    assert_eq!(apply(&mut image, &add), Ok(RecordOutcome::Applied));
    assert_eq!(apply(&mut image, &add), Ok(RecordOutcome::Unchanged));
    assert!(image.acls.contains(&acl));
    assert_eq!(apply(&mut image, &remove), Ok(RecordOutcome::Applied));
    assert_eq!(apply(&mut image, &remove), Ok(RecordOutcome::Unchanged));
    assert!(image.acls.is_empty());
}

fn reassign(target: Option<&[i32]>) -> MetadataRecord {
    MetadataRecord::ReassignPartition {
        topic: "t".into(),
        partition: 0,
        target: target.map(<[i32]>::to_vec),
    }
}

/// (replicas, leader, isr, leader epoch, partition epoch) of t-0.
fn t0(image: &ClusterImage) -> (Vec<i32>, i32, Vec<i32>, i32, i32) {
    let s = image.partition("t", 0).unwrap();
    (
        s.replicas.clone(),
        s.leader,
        s.isr.clone(),
        s.leader_epoch,
        s.partition_epoch,
    )
}

fn moving(adding: &[i32], removing: &[i32]) -> Option<Reassignment> {
    Some(Reassignment {
        adding: adding.to_vec(),
        removing: removing.to_vec(),
    })
}

#[test]
fn a_reassignment_adds_followers_and_completes_when_they_are_in_sync() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1, 2]])).unwrap();
    assert_eq!(
        apply(&mut image, &reassign(Some(&[2, 3]))),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(t0(&image), (vec![2, 3, 1], 1, vec![1, 2], 0, 1));
    assert_eq!(image.reassignment("t", 0).cloned(), moving(&[3], &[1]));
    // The leader brings 3 into the ISR: the last target replica in sync,
    // so the leaving leader hands over to the first target one.
    apply(&mut image, &change(1, &[1, 2, 3], 0, 1)).unwrap();
    assert_eq!(t0(&image), (vec![2, 3], 2, vec![2, 3], 1, 3));
    assert_eq!(image.reassignment("t", 0), None);
    assert!(image.reassignments.is_empty());
}

#[test]
fn a_target_already_in_sync_completes_at_once_and_the_same_replicas_change_nothing() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1, 2]])).unwrap();
    assert_eq!(
        apply(&mut image, &reassign(Some(&[1, 2]))),
        Ok(RecordOutcome::Unchanged)
    );
    apply(&mut image, &reassign(Some(&[2]))).unwrap();
    assert_eq!(t0(&image), (vec![2], 2, vec![2], 1, 2));
    assert_eq!(image.reassignment("t", 0), None);
}

#[test]
fn a_cancel_goes_back_to_the_replicas_it_started_from() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1, 2]])).unwrap();
    apply(&mut image, &reassign(Some(&[1, 3]))).unwrap();
    assert_eq!(t0(&image).0, [1, 3, 2]);
    assert_eq!(image.reassignment("t", 0).cloned(), moving(&[3], &[2]));
    // Replaced before it completes: 3 is still being added, 1 now leaves.
    apply(&mut image, &reassign(Some(&[2, 3]))).unwrap();
    assert_eq!(t0(&image).0, [2, 3, 1]);
    assert_eq!(image.reassignment("t", 0).cloned(), moving(&[3], &[1]));
    assert_eq!(
        apply(&mut image, &reassign(None)),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(t0(&image), (vec![2, 1], 1, vec![1, 2], 0, 3));
    assert_eq!(image.reassignment("t", 0), None);
    assert_eq!(
        apply(&mut image, &reassign(None)),
        Err(RecordError::NoReassignmentInProgress {
            topic: "t".into(),
            partition: 0
        })
    );
}

#[test]
fn a_bad_target_is_refused_and_a_deleted_topic_takes_its_reassignment_along() {
    let mut image = cluster();
    apply(&mut image, &create("t", 1, vec![vec![1, 2]])).unwrap();
    let before = image.clone();
    for target in [&[][..], &[1, 1], &[1, 9]] {
        assert!(
            matches!(
                apply(&mut image, &reassign(Some(target))),
                Err(RecordError::InvalidAssignment(_))
            ),
            "{target:?}"
        );
    }
    let elsewhere = MetadataRecord::ReassignPartition {
        topic: "t".into(),
        partition: 1,
        target: Some(vec![1]),
    };
    assert!(matches!(
        apply(&mut image, &elsewhere),
        Err(RecordError::UnknownPartition { .. })
    ));
    assert_eq!(image, before, "nothing refused changed the image");
    apply(&mut image, &reassign(Some(&[3]))).unwrap();
    assert!(image.reassignment("t", 0).is_some());
    apply(
        &mut image,
        &MetadataRecord::DeleteTopic { name: "t".into() },
    )
    .unwrap();
    assert!(image.reassignments.is_empty());
}

#[test]
fn only_a_fenced_broker_is_unregistered_and_it_may_register_again() {
    let mut image = cluster();
    let unregister = MetadataRecord::UnregisterBroker { id: 3 };
    assert_eq!(
        apply(&mut image, &unregister),
        Err(RecordError::BrokerLive(3))
    );
    apply(&mut image, &MetadataRecord::FenceBroker { id: 3 }).unwrap();
    assert_eq!(apply(&mut image, &unregister), Ok(RecordOutcome::Applied));
    assert!(!image.brokers.contains_key(&3));
    assert_eq!(
        apply(&mut image, &unregister),
        Err(RecordError::UnknownBroker(3))
    );
    assert_eq!(
        apply(&mut image, &register(3, 33)),
        Ok(RecordOutcome::Applied)
    );
    assert!(
        image.brokers[&3].fenced,
        "back as a new incarnation, fenced"
    );
}

/// A broker back without its logs leaves the ISRs it shares with others;
/// one it led goes to a live in-sync replica, or offline; where it is the
/// last in-sync replica it stays. Only its current process may say so.
#[test]
fn a_broker_that_lost_its_logs_leaves_its_isrs() {
    let mut image = cluster();
    let assignments = vec![vec![1, 2, 3], vec![2, 1, 3], vec![1, 3, 2], vec![1, 3, 2]];
    assert_eq!(
        apply(&mut image, &create("t", 9, assignments)),
        Ok(RecordOutcome::Applied)
    );
    set_partition(&mut image, 0, 1, &[1, 2, 3]);
    set_partition(&mut image, 1, 2, &[2, 1]);
    set_partition(&mut image, 2, 1, &[1]);
    set_partition(&mut image, 3, 1, &[1, 3]);
    image.brokers.get_mut(&3).unwrap().fenced = true;
    let before = image.topics["t"].partitions.clone();
    let stale = MetadataRecord::LogsLost {
        id: 1,
        incarnation: uuid(999),
    };
    assert_eq!(
        apply(&mut image, &stale),
        Err(RecordError::StaleIncarnation(1))
    );
    let lost = MetadataRecord::LogsLost {
        id: 1,
        incarnation: uuid(1),
    };
    assert_eq!(apply(&mut image, &lost), Ok(RecordOutcome::Applied));
    let after = &image.topics["t"].partitions;
    // It led: the next live in-sync replica in the replica order leads.
    assert_eq!((after[0].leader, &after[0].isr[..]), (2, &[2, 3][..]));
    assert_eq!(after[0].leader_epoch, before[0].leader_epoch + 1);
    assert_eq!(after[0].partition_epoch, before[0].partition_epoch + 1);
    // A follower: out of the ISR, the leader stays at its epoch.
    assert_eq!((after[1].leader, &after[1].isr[..]), (2, &[2][..]));
    assert_eq!(after[1].leader_epoch, before[1].leader_epoch);
    // The last in-sync replica stays: no other holds more.
    assert_eq!(after[2], before[2]);
    // No live in-sync replica is left to lead: offline.
    assert_eq!((after[3].leader, &after[3].isr[..]), (NO_LEADER, &[3][..]));
    assert_eq!(apply(&mut image, &lost), Ok(RecordOutcome::Unchanged));
}

/// A broker back on an empty disk that was the last in-sync replica of a
/// partition with other replicas: the partition goes offline with its ISR
/// marked lost (only its current process may say so); an ISR it shares,
/// or a partition it alone holds, is not this record's. Elections then
/// pass over it: no clean leader, no preferred one, and an unclean one
/// picks another replica; the ChangePartition of that election clears the
/// mark, as deleting the topic does.
#[test]
fn the_last_in_sync_replica_that_lost_its_logs_leads_nothing() {
    use crate::controller::election::{elect_leader, preferred_election};
    let mut image = cluster();
    let assignments = vec![vec![1, 2, 3], vec![1, 2, 3], vec![2, 1, 3]];
    assert_eq!(
        apply(&mut image, &create("t", 9, assignments)),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(
        apply(&mut image, &create("solo", 10, vec![vec![1]])),
        Ok(RecordOutcome::Applied)
    );
    set_partition(&mut image, 0, 1, &[1]);
    set_partition(&mut image, 1, NO_LEADER, &[1]);
    set_partition(&mut image, 2, 2, &[2, 1]);
    let before = image.topics["t"].partitions.clone();
    let solo_before = image.topics["solo"].partitions.clone();
    let stale = MetadataRecord::LastInSyncLost {
        id: 1,
        incarnation: uuid(999),
    };
    assert_eq!(
        apply(&mut image, &stale),
        Err(RecordError::StaleIncarnation(1))
    );
    let lost = MetadataRecord::LastInSyncLost {
        id: 1,
        incarnation: uuid(1),
    };
    assert_eq!(apply(&mut image, &lost), Ok(RecordOutcome::Applied));
    let after = image.topics["t"].partitions.clone();
    assert_eq!((after[0].leader, &after[0].isr[..]), (NO_LEADER, &[1][..]));
    assert_eq!(after[0].leader_epoch, before[0].leader_epoch + 1);
    assert_eq!(after[0].partition_epoch, before[0].partition_epoch + 1);
    assert_eq!(after[1].leader_epoch, before[1].leader_epoch, "was offline");
    assert_eq!(after[1].partition_epoch, before[1].partition_epoch + 1);
    assert_eq!(after[2], before[2], "a shared ISR is LogsLost's");
    assert_eq!(
        image.topics["solo"].partitions, solo_before,
        "no other copy"
    );
    assert!(image.isr_lost("t", 0) && image.isr_lost("t", 1) && !image.isr_lost("t", 2));
    assert_eq!(apply(&mut image, &lost), Ok(RecordOutcome::Unchanged));
    // With every other replica unregistered (gone for good), nothing
    // better is left: the emptied one may lead.
    let mut gone = image.clone();
    for id in [2, 3] {
        gone.brokers.get_mut(&id).unwrap().fenced = true;
        let unregister = MetadataRecord::UnregisterBroker { id };
        assert_eq!(apply(&mut gone, &unregister), Ok(RecordOutcome::Applied));
    }
    assert!(!gone.isr_lost("t", 0));

    let live = |_: i32| true;
    let p0 = &after[0];
    let past = image.past("t", 0, 1);
    assert!(past.isr_lost);
    let clean = elect_leader(p0, live, false, past);
    assert!(!clean.changes(p0), "no clean leader: {clean:?}");
    assert_eq!(preferred_election(p0, live, past), None);
    let unclean = elect_leader(p0, live, true, past);
    assert_eq!((unclean.leader, &unclean.isr[..]), (2, &[2][..]));
    assert!(unclean.unclean);
    assert_eq!(
        elect_leader(p0, |b| b == 1, true, past).leader,
        NO_LEADER,
        "never the replica that lost its log"
    );
    let elected = MetadataRecord::ChangePartition {
        topic: "t".into(),
        partition: 0,
        leader: unclean.leader,
        isr: unclean.isr,
        leader_epoch: unclean.leader_epoch,
        partition_epoch: p0.partition_epoch,
    };
    assert_eq!(apply(&mut image, &elected), Ok(RecordOutcome::Applied));
    assert!(!image.isr_lost("t", 0) && image.isr_lost("t", 1));
    let delete = MetadataRecord::DeleteTopic { name: "t".into() };
    assert_eq!(apply(&mut image, &delete), Ok(RecordOutcome::Applied));
    assert!(image.lost_isrs.is_empty());
}

/// ISR changes keep the order replicas left the ISR in, with the largest
/// the ISR has been since each left: who leaves goes last, who rejoins
/// leaves the list, and an emptied list is no entry.
#[test]
fn isr_departures_follow_isr_changes() {
    let mut image = cluster();
    assert_eq!(
        apply(&mut image, &create("t", 9, vec![vec![1, 2, 3]])),
        Ok(RecordOutcome::Applied)
    );
    let departures = |image: &ClusterImage| {
        let past = image.past("t", 0, 1);
        let listed = past.departures.iter();
        listed
            .map(|d| (d.broker, d.isr_max_since))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        apply(&mut image, &change(1, &[1, 2], 0, 0)),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(departures(&image), [(3, 2)]);
    assert_eq!(
        apply(&mut image, &change(1, &[1], 0, 1)),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(departures(&image), [(3, 2), (2, 1)]);
    assert_eq!(
        apply(&mut image, &change(1, &[1, 3], 0, 2)),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(departures(&image), [(2, 2)], "the ISR grew since 2 left");
    assert_eq!(
        apply(&mut image, &change(1, &[1, 3, 2], 0, 3)),
        Ok(RecordOutcome::Applied)
    );
    assert!(image.isr_departures.is_empty());
    assert_eq!(
        apply(&mut image, &change(1, &[1, 2], 0, 4)),
        Ok(RecordOutcome::Applied)
    );
    let delete = MetadataRecord::DeleteTopic { name: "t".into() };
    assert_eq!(apply(&mut image, &delete), Ok(RecordOutcome::Applied));
    assert!(image.isr_departures.is_empty());
}

/// A replica whose logs were lost no longer counts as having left an ISR
/// in sync: LogsLost takes it out of every partition's departures, and
/// the election that ends a lost ISR records no departure for its member.
#[test]
fn a_replica_that_lost_its_logs_is_no_departure() {
    let mut image = cluster();
    let assignments = vec![vec![1, 2, 3], vec![1, 2, 3]];
    assert_eq!(
        apply(&mut image, &create("t", 9, assignments)),
        Ok(RecordOutcome::Applied)
    );
    assert_eq!(
        apply(&mut image, &change(1, &[1], 0, 0)),
        Ok(RecordOutcome::Applied)
    );
    let departed = |image: &ClusterImage| {
        let past = image.past("t", 0, 1);
        past.departures.iter().map(|d| d.broker).collect::<Vec<_>>()
    };
    assert_eq!(departed(&image), [2, 3]);
    let lost = MetadataRecord::LogsLost {
        id: 3,
        incarnation: uuid(3),
    };
    assert_eq!(apply(&mut image, &lost), Ok(RecordOutcome::Applied));
    assert_eq!(departed(&image), [2]);
    assert_eq!(apply(&mut image, &lost), Ok(RecordOutcome::Unchanged));

    let last = MetadataRecord::LastInSyncLost {
        id: 1,
        incarnation: uuid(1),
    };
    assert_eq!(apply(&mut image, &last), Ok(RecordOutcome::Applied));
    let epoch = image.topics["t"].partitions[0].leader_epoch;
    let elected = MetadataRecord::ChangePartition {
        topic: "t".into(),
        partition: 0,
        leader: 2,
        isr: vec![2],
        leader_epoch: epoch + 1,
        partition_epoch: 2,
    };
    assert_eq!(apply(&mut image, &elected), Ok(RecordOutcome::Applied));
    assert!(
        departed(&image).is_empty(),
        "1's log is gone: not a departure"
    );
}
