//! AddRaftVoter and RemoveRaftVoter (KIP-853; `kafka-metadata-quorum.sh
//! add-controller` and `remove-controller`, AdminClient `addRaftVoter` and
//! `removeRaftVoter`): the voters of the metadata quorum change while it
//! runs. Any node answers: the change goes to the active controller (see
//! `controller::voter_change`). A node to add must already follow the
//! metadata log as a broker-only node. A voter's directory id is the one
//! the active controller wrote for it (`controller::directories`; shown by
//! DescribeQuorum): RemoveRaftVoter of another directory of that node is
//! VOTER_NOT_FOUND, as in Kafka; AddRaftVoter adds the node with the
//! directory it has (its id is written once it votes). The listeners are
//! not taken: a voter is dialed where it joined as a learner. Needs Alter
//! on the cluster.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, ApiKey, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::controller::{Controller, ControllerError};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub const ADD: ApiSpec = ApiSpec {
    key: ApiKey::AddRaftVoter,
    min: 0,
    max: 0,
};

pub const REMOVE: ApiSpec = ApiSpec {
    key: ApiKey::RemoveRaftVoter,
    min: 0,
    max: 0,
};

/// A refusal: Kafka's code and why.
type Refusal = (i16, String);

pub async fn add(
    shard: &Rc<Shard>,
    access: &Access,
    request: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let wait = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let outcome = match allowed(shard, access, request.cluster_id.as_deref()) {
        Ok(controller) => controller
            .add_voter(request.voter_id, wait)
            .await
            .map_err(told),
        Err(refusal) => Err(refusal),
    };
    let (error_code, error_message) = answer(outcome);
    let mut response = AddRaftVoterResponse::default();
    response.error_code = error_code;
    response.error_message = error_message;
    response
}

pub async fn remove(
    shard: &Rc<Shard>,
    access: &Access,
    request: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let outcome = match allowed(shard, access, request.cluster_id.as_deref()) {
        Ok(controller) => match other_directory(controller, &request) {
            Some(refusal) => Err(refusal),
            None => controller
                .remove_voter(request.voter_id)
                .await
                .map_err(told),
        },
        Err(refusal) => Err(refusal),
    };
    let (error_code, error_message) = answer(outcome);
    let mut response = RemoveRaftVoterResponse::default();
    response.error_code = error_code;
    response.error_message = error_message;
    response
}

/// VOTER_NOT_FOUND when the request names a directory of the voter other
/// than the one its votes are asked as (a zero id names none).
fn other_directory(controller: &Controller, request: &RemoveRaftVoterRequest) -> Option<Refusal> {
    let asked = request.voter_directory_id;
    let (_, image) = controller.image();
    let recorded = *image.voter_directories.get(&request.voter_id)?;
    (!asked.is_nil() && asked != recorded).then(|| {
        let why = format!(
            "voter {} is directory {recorded}, not {asked}",
            request.voter_id
        );
        (ResponseError::VoterNotFound.code(), why)
    })
}

/// The error code and message a change's outcome is answered with.
fn answer(outcome: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => (code, Some(StrBytes::from_string(message))),
    }
}

/// The quorum to change, if the principal may and the request is for this
/// cluster.
fn allowed<'s>(
    shard: &'s Shard,
    access: &Access,
    cluster_id: Option<&str>,
) -> Result<&'s Controller, Refusal> {
    if !access.cluster(Operation::Alter) {
        return Err((
            ResponseError::ClusterAuthorizationFailed.code(),
            "Alter on the cluster is needed".into(),
        ));
    }
    let Some(controller) = shard.controller.as_deref() else {
        // Kafka's answer for a quorum whose voters are fixed.
        return Err((
            ResponseError::UnsupportedVersion.code(),
            "this broker runs alone, without a metadata quorum".into(),
        ));
    };
    let ours = super::metadata::cluster_id(shard);
    match cluster_id {
        Some(theirs) if theirs != ours => Err((
            ResponseError::InconsistentClusterId.code(),
            format!("cluster id {theirs:?}, this cluster's is {ours:?}"),
        )),
        _ => Ok(controller),
    }
}

fn told(e: ControllerError) -> Refusal {
    (e.error_code(), e.to_string())
}
