//! JoinGroup: parks on the coordinator until the join phase completes.
//! v8 adds the client's reason (KIP-800), logged as Kafka does; v9 tells a
//! static leader that rejoins a stable group to skip the assignment
//! (KIP-814, `group::membership::join`).

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse, RequestHeader};

use super::{call, client_reason, sender};
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::{ApiSpec, Client};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::JoinGroup,
    min: 0,
    max: 9,
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
    if let Some(reason) = client_reason(request.reason.as_ref()) {
        tracing::debug!(group = %group_id, member = %member_id, reason, "JoinGroup");
    }
    let sender = sender(header, client, version);
    call(groups, &group_id, |reply| GroupMsg::Join {
        sender,
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| crate::group::join_error(crate::group::not_available(), &member_id))
}
