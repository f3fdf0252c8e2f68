//! Integration rows: configuration and the hashes of its SCIM tokens.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::Write;
use super::{Store, StoreError, keys};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegrationRecord {
    pub pk: String,
    pub sk: String,
    pub id: String,
    pub name: String,
    /// The configuration as JSON text (connector, roles, attributes).
    pub config: String,
    /// SHA-256 hashes of the valid SCIM tokens (several during a rotation).
    pub token_hashes: Vec<String>,
    pub created: String,
    /// Set while its users are deprovisioned before a purge (`store::offboard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offboarding: Option<super::offboard::Offboarding>,
    /// GSI `gsi1`: all integrations, by id.
    #[serde(default)]
    pub gsi1pk: String,
    #[serde(default)]
    pub gsi1sk: String,
}

impl IntegrationRecord {
    pub fn config_json(&self) -> Value {
        serde_json::from_str(&self.config).unwrap_or(Value::Null)
    }
}

impl Store {
    pub async fn create_integration(
        &self,
        id: &str,
        name: &str,
        config: &Value,
        token_hash: String,
        created: String,
    ) -> Result<IntegrationRecord, StoreError> {
        let record = IntegrationRecord {
            pk: keys::integration_pk(id),
            sk: keys::CONFIG_SK.to_string(),
            id: id.to_string(),
            name: name.to_string(),
            config: config.to_string(),
            token_hashes: vec![token_hash],
            created,
            offboarding: None,
            gsi1pk: keys::INTEGRATIONS_GSI_PK.to_string(),
            gsi1sk: id.to_string(),
        };
        let item = serde_dynamo::to_item(&record).map_err(|e| StoreError::Malformed(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(record)
    }

    /// Every integration, by id (one key-range query on `gsi1`).
    pub async fn list_integrations(&self) -> Result<Vec<IntegrationRecord>, StoreError> {
        self.gsi1_all(keys::INTEGRATIONS_GSI_PK).await
    }

    /// Replaces an integration's name and configuration (tokens untouched). `false`: it is
    /// gone or being offboarded.
    pub async fn update_integration(&self, id: &str, name: &str, config: &Value) -> Result<bool, StoreError> {
        let write = Write::IntegrationUpdate { iid: id.to_string(), name: name.to_string(), config: config.clone() };
        match self.commit(&[write]).await {
            Ok(()) => Ok(true),
            Err(e) if e.lost_race() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The action of a `Write::IntegrationUpdate` (alone, or with the re-plan it starts).
    pub(in crate::store) fn integration_update_action(
        &self,
        id: &str,
        name: &str,
        config: &Value,
    ) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(super::key(keys::integration_pk(id), keys::CONFIG_SK.to_string())))
            .update_expression("SET #name = :name, config = :config")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(offboarding)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", super::s(name))
            .expression_attribute_values(":config", super::s(config.to_string()))
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder().update(update).build())
    }

    /// Sets the token hashes, only if they are still `expected` (no lost rotation).
    pub async fn set_token_hashes(&self, id: &str, expected: &[String], hashes: &[String]) -> Result<bool, StoreError> {
        let list =
            |v: &[String]| aws_sdk_dynamodb::types::AttributeValue::L(v.iter().map(|h| super::s(h.as_str())).collect());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(super::key(keys::integration_pk(id), keys::CONFIG_SK.to_string())))
            .update_expression("SET token_hashes = :new")
            .condition_expression("token_hashes = :old")
            .expression_attribute_values(":new", list(hashes))
            .expression_attribute_values(":old", list(expected))
            .send()
            .await;
        Ok(StoreError::conditional("UpdateItem", result)?.is_some())
    }

    /// Deletes the integration's configuration: its SCIM endpoint and tokens stop working.
    /// Its other rows stay for the record.
    pub async fn get_integration(&self, id: &str) -> Result<Option<IntegrationRecord>, StoreError> {
        let Some(item) = self.get(keys::integration_pk(id), keys::CONFIG_SK.to_string()).await? else {
            return Ok(None);
        };
        serde_dynamo::from_item(item).map(Some).map_err(|e| StoreError::Malformed(e.to_string()))
    }
}
