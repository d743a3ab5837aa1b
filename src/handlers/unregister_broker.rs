//! UnregisterBroker (`kafka-cluster.sh unregister --id N`): a broker that
//! is gone for good leaves the cluster. Its registration goes (only a
//! fenced one's: a live broker must be stopped first, or it would keep
//! serving replicas the metadata no longer knows it for), and a
//! broker-only node's controller leaves the quorum's membership, so the
//! active controller stops replicating the metadata log to it. Its
//! partitions keep it as an offline replica until they are reassigned. A
//! node started again under the id registers anew. Needs Alter on the
//! cluster.

use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, RequestHeader, UnregisterBrokerRequest, UnregisterBrokerResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::controller::records::{MetadataRecord, RecordError};
use crate::controller::ControllerError;
use crate::security::acl::Operation;
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::UnregisterBroker,
    min: 0,
    max: 0,
};

pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    request: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let mut response = UnregisterBrokerResponse::default();
    let refusal = if access.cluster(Operation::Alter) {
        unregister(shard, request.broker_id.0).await.err()
    } else {
        Some((ResponseError::ClusterAuthorizationFailed.code(), None))
    };
    if let Some((code, message)) = refusal {
        response.error_code = code;
        response.error_message = message.map(StrBytes::from_string);
    }
    response
}

async fn unregister(shard: &Shard, id: i32) -> Result<(), (i16, Option<String>)> {
    let Some(controller) = &shard.controller else {
        return Err((
            ResponseError::BrokerIdNotRegistered.code(),
            Some("this broker runs alone, without a metadata quorum".into()),
        ));
    };
    let refused = |e: ControllerError| (e.error_code(), Some(e.to_string()));
    match controller
        .propose(MetadataRecord::UnregisterBroker { id })
        .await
    {
        Ok(_) => {}
        // A retried request whose registration went the first time: its
        // learner may still be in the membership.
        Err(ControllerError::Refused(RecordError::UnknownBroker(_)))
            if controller.quorum().learners.contains_key(&id) => {}
        Err(e) => return Err(refused(e)),
    }
    controller.remove_learner(id).await.map_err(refused)
}
