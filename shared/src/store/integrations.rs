//! Integration rows: configuration and the hashes of its SCIM tokens.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

    pub async fn get_integration(&self, id: &str) -> Result<Option<IntegrationRecord>, StoreError> {
        let Some(item) = self.get(keys::integration_pk(id), keys::CONFIG_SK.to_string()).await? else {
            return Ok(None);
        };
        serde_dynamo::from_item(item).map(Some).map_err(|e| StoreError::Malformed(e.to_string()))
    }
}
