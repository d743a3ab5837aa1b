//! JoinGroup: parks on the coordinator until the join phase completes.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse, RequestHeader};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::{ApiSpec, Client};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::JoinGroup,
    min: 0,
    max: 7,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    header: &RequestHeader,
    client: &Client,
    version: i16,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    call(groups, &group_id, |reply| GroupMsg::Join {
        version,
        client_id,
        client_host: client.host.clone(),
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| crate::group::join_error(crate::group::not_available(), &member_id))
}
