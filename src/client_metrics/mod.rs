//! Client metrics (KIP-714): subscriptions an operator sets as
//! CLIENT_METRICS configs (`configs`), what each client is asked to push
//! (`subscription`), the instances heard from and their pushes checked as
//! Kafka checks them (`registry`), and the pushed OTLP metrics kept as
//! series for `/metrics` (`series`), where Kafka would hand them to a
//! metrics reporter plugin.

pub mod configs;
pub mod registry;
pub mod series;
pub mod subscription;

pub use configs::{ClientMetricsConfigError, ClientMetricsConfigs};
pub use registry::{ClientTelemetry, Push, Subscribed, TelemetryError, TelemetrySnapshot};
pub use subscription::{ClientIdentity, Subscription};
