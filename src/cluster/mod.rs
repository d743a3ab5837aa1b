//! What a node knows of the cluster it belongs to before the metadata
//! quorum says more: its stored identity and the voter list it was given.

pub mod identity;
pub mod node;
pub mod view;
pub mod voters;

pub use identity::{MetaProperties, META_PROPERTIES};
