//! Provisioning state: each user's desired assignment (`ASSIGN#`), what the worker last applied
//! (`APPLIED#`), provisioning requests (`REQUEST#`) and their jobs (`JOB#`), a file per row kind.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Item, Store, StoreError, key, keys, n, s};
use crate::assignment::Assignment;

mod assign;
mod jobs;
mod requests;

pub use assign::*;
pub use jobs::*;
pub use requests::*;

pub mod status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const SUPERSEDED: &str = "superseded";
    /// A `report` resync found the app differs (docs/contract.md "Resync and drift"); the app
    /// was not touched.
    pub const DRIFT: &str = "drift";

    pub const REQUESTED: &str = "requested";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const PARTIALLY_FAILED: &str = "partially_failed";

    pub fn is_terminal(job_status: &str) -> bool {
        matches!(job_status, SUCCEEDED | FAILED | SUPERSEDED | DRIFT)
    }
}

pub(super) fn to_item<T: Serialize>(v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Malformed(e.to_string()))
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed(e.to_string()))
}

pub fn assignment_json(a: Option<&Assignment>) -> Option<String> {
    a.map(|a| serde_json::to_string(a).unwrap_or_default())
}

pub fn parse_assignment(s: Option<&str>) -> Option<Assignment> {
    s.and_then(|s| serde_json::from_str(s).ok())
}

impl Store {
    pub(super) fn put_action(
        &self,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some((expr, values)) = condition {
            put = put.condition_expression(expr).expression_attribute_names("#pk", keys::PK);
            for (k, v) in values {
                put = put.expression_attribute_values(k, v);
            }
        }
        let put = put.build().map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[cfg(test)]
#[path = "../provisioning_tests.rs"]
mod row_tests;
