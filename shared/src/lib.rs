//! idlcm core: SCIM model, filter and PATCH engines, the DynamoDB store, configuration,
//! authentication and the SCIM service logic the `scim-api` function exposes.

pub mod auth;
pub mod config;
pub mod error;
pub mod scim;
pub mod service;
pub mod store;
