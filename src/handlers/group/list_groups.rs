//! ListGroups: every shard's coordinator lists its groups (v4: filtered
//! by state).

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse, RequestHeader};

use super::call_shard;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ListGroups,
    min: 0,
    max: 4,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    _version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let asks = (0..groups.shard().count).map(|target| {
        let states = states.clone();
        call_shard(groups, target, move |reply| GroupMsg::List {
            states,
            reply,
        })
    });
    let mut response = ListGroupsResponse::default();
    for listed in futures::future::join_all(asks).await {
        match listed {
            Some(listed) => response.groups.extend(listed),
            None => response.error_code = crate::group::not_available(),
        }
    }
    response
}
