//! Offboarding an integration before its purge (docs/contract.md "Limits and offboarding"):
//! the configuration row is marked, its SCIM tokens cleared and the owners' reach to it
//! removed, in one transaction with the `OFFBOARD` request and its fan-out task; the purge
//! (`store::purge`) starts when that request has succeeded (`crate::offboard`).

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, key, keys};
use crate::assignment::Assignment;

/// What offboarding does to each managed user in the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffboardMode {
    /// Removes the account (the connector's `deprovision`).
    Deprovision,
    /// Keeps the account, inactive (the connector's `deactivate`).
    Deactivate,
}

impl OffboardMode {
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.unwrap_or("deprovision") {
            "deprovision" => Some(Self::Deprovision),
            "deactivate" => Some(Self::Deactivate),
            _ => None,
        }
    }

    /// What a user should hold in the app once offboarded, given what it holds or should
    /// hold now: nothing (deprovision), or the same, inactive (deactivate).
    pub fn target(self, current: Option<Assignment>) -> Option<Assignment> {
        match self {
            Self::Deprovision => None,
            Self::Deactivate => current.map(|a| Assignment { active: false, ..a }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deprovision => "deprovision",
            Self::Deactivate => "deactivate",
        }
    }
}

/// On the configuration row while its users are offboarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offboarding {
    /// The `OFFBOARD` Activity request; the purge starts when it has succeeded.
    pub request_id: String,
    pub mode: OffboardMode,
    pub started_at: String,
}

fn malformed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Malformed(e.to_string())
}

impl Store {
    /// Marks the integration offboarding and clears its SCIM tokens (they answer 401 from the
    /// commit on), only if it exists and is not offboarding already.
    pub(in crate::store) fn offboard_start_action(
        &self,
        iid: &str,
        off: &Offboarding,
    ) -> Result<TransactWriteItem, StoreError> {
        let value = serde_dynamo::to_attribute_value(off).map_err(malformed)?;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::CONFIG_SK.to_string())))
            .update_expression("SET offboarding = :off, token_hashes = :none")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(offboarding)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":off", value)
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .build()
            .map_err(malformed)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}
