//! DescribeConfigs of a group config resource (KIP-848's GROUP type,
//! `kafka-configs --entity-type groups --describe`): every group config
//! honoured here with the value in effect, the group's own or the broker's.
//! Changes go through `configs::alter_resource` as `AdminOp::AlterGroupConfigs`.

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::protocol::StrBytes;

use super::configs::{synonyms, SOURCE_DEFAULT, TYPE_INT, TYPE_STRING};
use crate::config::BrokerConfig;
use crate::group_configs::{Kind, GROUP_CONFIG_KEYS};
use crate::metadata::Topics;

/// Kafka's ConfigSource of a value set on the group itself.
const SOURCE_GROUP: i8 = 8;

/// The group's configs, filtered by `wanted`; an empty group name is not
/// a group (INVALID_REQUEST, as Kafka answers it).
pub fn describe(
    broker: &BrokerConfig,
    topics: &Topics,
    group: &str,
    include_synonyms: bool,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<DescribeConfigsResourceResult>, String> {
    if group.is_empty() {
        return Err("a group config resource needs a group name".into());
    }
    let own = topics.group_configs.of(group);
    Ok(GROUP_CONFIG_KEYS
        .iter()
        .filter(|key| wanted(key.name))
        .map(|key| {
            let mut levels = Vec::with_capacity(2);
            if let Some(value) = own.and_then(|set| set.get(key.name)) {
                levels.push((key.name.to_string(), Some(value.clone()), SOURCE_GROUP));
            }
            let default = (key.default)(broker);
            levels.push((key.name.to_string(), Some(default), SOURCE_DEFAULT));
            let mut e = DescribeConfigsResourceResult::default();
            e.name = StrBytes::from_static_str(key.name);
            e.value = levels[0].1.clone().map(StrBytes::from_string);
            e.config_source = levels[0].2;
            e.config_type = match key.kind {
                Kind::Int { .. } => TYPE_INT,
                Kind::OffsetReset | Kind::Isolation => TYPE_STRING,
            };
            if include_synonyms {
                e.synonyms = synonyms(levels);
            }
            e
        })
        .collect())
}
