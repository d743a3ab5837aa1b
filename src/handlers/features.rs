//! Feature levels (KIP-584) as clients see them: the ones ApiVersions
//! lists, and UpdateFeatures (`kafka-features.sh upgrade|downgrade`).
//!
//! Sluice's levels follow the software the cluster runs: a record kind an
//! older node cannot read is written only once every member reads it
//! (`controller::directories::every_member_reads`), so there is nothing to
//! finalize by hand. Listed are the features whose behaviour Sluice has, at
//! the level Kafka gives that behaviour; `metadata.version` is not (its
//! levels name Kafka's own metadata records).

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, UpdateFeaturesRequest, UpdateFeaturesResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::Shard;

/// v2 (Kafka 4.0) answers all-or-nothing with the top-level error and no
/// per-feature results; v0-1 answer each feature.
pub const UPDATE_FEATURES: ApiSpec = ApiSpec {
    key: ApiKey::UpdateFeatures,
    min: 0,
    max: 2,
};

/// The first UpdateFeatures version answered without per-feature results.
const TOP_LEVEL_ONLY_SINCE: i16 = 2;

/// A feature this broker has, and the highest level it runs.
struct Feature {
    name: &'static str,
    level: i16,
    /// Only a cluster (a metadata quorum) has it.
    cluster_only: bool,
    /// The level the config holds it at, when the config may hold it
    /// below `level`.
    configured: Option<fn(&crate::config::BrokerConfig) -> i16>,
}

impl Feature {
    /// The level finalized: the configured one, else the highest.
    fn finalized(&self, shard: &Shard) -> i16 {
        self.configured
            .map_or(self.level, |level| level(&shard.config))
    }
}

const FEATURES: &[Feature] = &[
    // KIP-848's consumer group protocol (ConsumerGroupHeartbeat).
    Feature {
        name: "group.version",
        level: 1,
        cluster_only: false,
        configured: None,
    },
    // KIP-853's dynamic quorum (AddRaftVoter, RemoveRaftVoter).
    Feature {
        name: "kraft.version",
        level: 1,
        cluster_only: true,
        configured: None,
    },
    // KIP-890's second part: clients that see level 2 send no
    // AddPartitionsToTxn or AddOffsetsToTxn (Produce v12 and TxnOffsetCommit
    // v5 add the partition) and expect an epoch bump at every EndTxn (v5).
    Feature {
        name: "transaction.version",
        level: crate::config::TransactionVersion::LATEST.level(),
        cluster_only: false,
        configured: Some(|config| config.transaction_version.level()),
    },
    // KIP-932's share groups (ShareGroupHeartbeat, ShareFetch,
    // ShareAcknowledge), which Kafka 4.1+ serves only at level 1.
    Feature {
        name: "share.version",
        level: 1,
        cluster_only: false,
        configured: None,
    },
    // KIP-966's eligible leader replicas (DescribeTopicPartitions).
    Feature {
        name: "eligible.leader.replicas.version",
        level: 1,
        cluster_only: true,
        configured: None,
    },
];

/// Kafka's UpdateFeatures upgrade types (v1+; v0's `allow_downgrade` is
/// a safe downgrade).
const UPGRADE: i8 = 1;
const SAFE_DOWNGRADE: i8 = 2;

fn features(shard: &Shard) -> impl Iterator<Item = &'static Feature> {
    let cluster = shard.topics().cluster.is_some();
    FEATURES.iter().filter(move |f| cluster || !f.cluster_only)
}

/// Fills ApiVersions' features (v3+): each one supported from level 0 (1
/// below v4: clients before KAFKA-17011 fail to read a minimum of 0) to
/// the level it runs at, and finalized there, at the metadata log's
/// position (0 on a single node, which has no log).
pub fn list(shard: &Shard, version: i16, response: &mut ApiVersionsResponse) {
    if version < 3 {
        return;
    }
    let min = if version >= 4 { 0 } else { 1 };
    for feature in features(shard) {
        let mut supported = SupportedFeatureKey::default();
        supported.name = StrBytes::from_static_str(feature.name);
        supported.min_version = min;
        supported.max_version = feature.level;
        response.supported_features.push(supported);
        let level = feature.finalized(shard);
        // Level 0 is the feature off: Kafka lists no finalized level then.
        if level > 0 {
            let mut finalized = FinalizedFeatureKey::default();
            finalized.name = StrBytes::from_static_str(feature.name);
            finalized.min_version_level = level;
            finalized.max_version_level = level;
            response.finalized_features.push(finalized);
        }
    }
    response.finalized_features_epoch = shard
        .topics()
        .cluster
        .as_deref()
        .map_or(0, |view| i64::try_from(view.index).unwrap_or(i64::MAX));
}

/// Needs Alter on the cluster, as in Kafka. A feature already at the level
/// asked is a success (Kafka's no-op); any other level is refused with
/// INVALID_UPDATE_VERSION and why, as Kafka refuses a level no broker
/// supports.
pub fn update(
    shard: &Shard,
    access: &Access,
    header: &RequestHeader,
    request: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let mut response = UpdateFeaturesResponse::default();
    if !access.cluster(Operation::Alter) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let running: Vec<&Feature> = features(shard).collect();
    response.results = request
        .feature_updates
        .iter()
        .map(|update| {
            let upgrade_type = if header.request_api_version >= 1 {
                update.upgrade_type
            } else if update.allow_downgrade {
                SAFE_DOWNGRADE
            } else {
                UPGRADE
            };
            let name = update.feature.as_str();
            let feature = running.iter().find(|f| f.name == name);
            let current = feature.map_or(0, |f| f.finalized(shard));
            let configured = feature.is_some_and(|f| f.configured.is_some());
            let level = update.max_version_level;
            let refusal = refusal(name, current, level, upgrade_type, configured);
            let mut result = UpdatableFeatureResult::default();
            result.feature = update.feature.clone();
            // Null unless refused, as Kafka answers (the default is "").
            result.error_message = None;
            if let Some(message) = refusal {
                result.error_code = ResponseError::InvalidUpdateVersion.code();
                result.error_message = Some(StrBytes::from_string(message));
            }
            result
        })
        .collect();
    if header.request_api_version >= TOP_LEVEL_ONLY_SINCE {
        top_level_only(&mut response);
    }
    response
}

/// v2's answer: the first refusal refuses the whole request, in Kafka 4.0's
/// words, and no feature is answered on its own.
fn top_level_only(response: &mut UpdateFeaturesResponse) {
    let results = std::mem::take(&mut response.results);
    if let Some(refused) = results.into_iter().find(|r| r.error_code != 0) {
        response.error_code = refused.error_code;
        response.error_message = Some(StrBytes::from_string(format!(
            "The update failed for all features since the following feature had an error: {}",
            refused.error_message.as_deref().unwrap_or_default()
        )));
    }
}

/// Why `name` cannot go from `current` to `level`; `None` when it is
/// there already. A `configured` feature's level is set in the config.
fn refusal(
    name: &str,
    current: i16,
    level: i16,
    upgrade_type: i8,
    configured: bool,
) -> Option<String> {
    if level == current {
        return None;
    }
    if level < current && upgrade_type == UPGRADE {
        return Some(format!(
            "{name} is at {current}: going to {level} is a downgrade, which needs the safe \
             or unsafe downgrade type"
        ));
    }
    if level > current && upgrade_type != UPGRADE {
        return Some(format!(
            "{name} is at {current}: a downgrade cannot go up to {level}"
        ));
    }
    if configured {
        return Some(format!(
            "{name} runs at {current} on this broker and cannot be set to {level} here: \
             set it in every node's config"
        ));
    }
    Some(format!(
        "{name} runs at {current} on this cluster and cannot be set to {level}: Sluice's \
         feature levels follow the software every node runs"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNSAFE_DOWNGRADE: i8 = 3;

    #[test]
    fn only_the_level_a_feature_runs_at_is_accepted() {
        assert_eq!(refusal("group.version", 1, 1, UPGRADE, false), None);
        assert_eq!(refusal("unknown.feature", 0, 0, UPGRADE, false), None);
        let refused = |current, level, kind| refusal("group.version", current, level, kind, false);
        assert!(refused(1, 0, UPGRADE).unwrap().contains("downgrade type"));
        assert!(refused(0, 1, SAFE_DOWNGRADE)
            .unwrap()
            .contains("cannot go up"));
        assert!(refused(1, 2, UPGRADE)
            .unwrap()
            .contains("follow the software"));
        assert!(refused(1, 0, UNSAFE_DOWNGRADE)
            .unwrap()
            .contains("follow the software"));
        // A level the config holds says where it is set.
        let configured = refusal("transaction.version", 2, 0, SAFE_DOWNGRADE, true);
        assert!(configured.unwrap().contains("config"));
    }
}
