//! idlcm core: SCIM model, filter and PATCH engines, the DynamoDB store, configuration,
//! authentication and the SCIM service logic the `scim-api` function exposes.

pub mod assignment;
pub mod auth;
pub mod config;
pub mod connector;
pub mod delivery;
pub mod error;
pub mod fuzzing;
pub mod integration;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod offboard;
pub mod queue;
pub mod scim;
pub mod secrets;
pub mod service;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod time;
pub mod worker;
