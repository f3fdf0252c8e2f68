//! The audit trail (docs/contract.md "Owners and audit"): one row per admin or owner action,
//! written in the action's own transaction where the action is one. An integration's entries
//! sit under the integration (`AUDIT#<ulid>`), others under `AUDIT`; all of them are in the
//! `AUDIT` partition of `gsi1` by id (ULIDs: time order). They expire with the history.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::provisioning::from_item;
use super::{Item, Store, StoreError, keys, s};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRow {
    pub pk: String,
    pub sk: String,
    pub id: String,
    pub at: String,
    /// `{ "kind", "id", "name" }` as JSON text.
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// `{ "<path>": { "before", "after" } }` as JSON text, secrets as `***`.
    pub changes: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
    pub expires_at: i64,
}

impl AuditRow {
    pub fn new(store: &Store, at: &str, actor: String, action: &str, iid: Option<&str>, changes: String) -> Self {
        let id = ulid::Ulid::new().to_string();
        Self {
            pk: iid.map(keys::integration_pk).unwrap_or_else(|| keys::AUDIT_PK.to_string()),
            sk: keys::audit_sk(&id),
            at: at.to_string(),
            actor,
            action: action.to_string(),
            integration_id: iid.map(str::to_string),
            changes,
            gsi1pk: keys::AUDIT_PK.to_string(),
            gsi1sk: id.clone(),
            expires_at: store.audit_expires_at(),
            id,
        }
    }
}

impl Store {
    /// The entry, for the action's transaction.
    pub(in crate::store) fn audit_put(&self, row: &AuditRow) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(row).map_err(|e| StoreError::Malformed(e.to_string()))?))
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A page of entries, newest first: one integration's (a key-range query on its rows), or
    /// every entry (`gsi1`), then kept to `only` integrations when given. Keeps reading until
    /// `limit` entries or the end; returns the position to go on from.
    pub async fn audit_page(
        &self,
        integration: Option<&str>,
        only: Option<&[String]>,
        start: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<AuditRow>, Option<Item>), StoreError> {
        let mut out = Vec::new();
        let mut start = start;
        loop {
            let mut q = self.client.query().table_name(&self.table).scan_index_forward(false);
            q = match integration {
                Some(iid) => q
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":pk", s(keys::integration_pk(iid)))
                    .expression_attribute_values(":prefix", s(keys::audit_sk(""))),
                None => q
                    .index_name(keys::GSI1)
                    .key_condition_expression("#g = :g")
                    .expression_attribute_names("#g", keys::GSI1_PK)
                    .expression_attribute_values(":g", s(keys::AUDIT_PK)),
            };
            if let Some(ids) = only {
                if ids.is_empty() {
                    return Ok((Vec::new(), None));
                }
                let names: Vec<String> = (0..ids.len().min(100)).map(|i| format!(":i{i}")).collect();
                q = q.filter_expression(format!("integration_id IN ({})", names.join(", ")));
                for (name, id) in names.iter().zip(ids) {
                    q = q.expression_attribute_values(name, AttributeValue::S(id.clone()));
                }
            }
            let page = q
                .limit((limit - out.len()).max(1) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(from_item(item)?);
            }
            start = page.last_evaluated_key;
            if out.len() >= limit || start.is_none() {
                return Ok((out, start));
            }
        }
    }
}
