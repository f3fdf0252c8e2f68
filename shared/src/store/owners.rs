//! Integration owners (docs/contract.md "Owners and audit"): a name, the integrations they
//! own, and the hash of their token. A second row, keyed by that hash, finds the owner of a
//! token in one read; both rows are written and removed together, so a revoked or rotated
//! token stops working with the transaction that changed it.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::plan::Write;
use super::provisioning::from_item;
use super::{Store, StoreError, get_s, key, keys, s};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OwnerRecord {
    pub pk: String,
    pub sk: String,
    pub id: String,
    pub name: String,
    /// The integrations this owner may reach.
    pub integrations: Vec<String>,
    /// SHA-256 of the owner's token.
    pub token_hash: String,
    pub created: String,
    /// GSI `gsi1`: every owner, by id.
    pub gsi1pk: String,
    pub gsi1sk: String,
}

impl OwnerRecord {
    pub fn new(id: &str, name: &str, integrations: Vec<String>, token_hash: String, created: &str) -> Self {
        Self {
            pk: keys::owner_pk(id),
            sk: keys::OWNER_SK.to_string(),
            id: id.to_string(),
            name: name.to_string(),
            integrations,
            token_hash,
            created: created.to_string(),
            gsi1pk: keys::OWNERS_GSI_PK.to_string(),
            gsi1sk: id.to_string(),
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Malformed(e.to_string())
}

impl Store {
    fn token_row_put(&self, hash: &str, owner_id: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item(keys::PK, s(keys::owner_token_pk(hash)))
            .item(keys::SK, s(keys::OWNER_TOKEN_SK))
            .item("owner_id", s(owner_id))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .build()
            .map_err(malformed)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn token_row_delete(&self, hash: &str) -> Result<TransactWriteItem, StoreError> {
        let del = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::owner_token_pk(hash), keys::OWNER_TOKEN_SK.to_string())))
            .build()
            .map_err(malformed)?;
        Ok(TransactWriteItem::builder().delete(del).build())
    }

    /// The owner and its token row, in one transaction (with `extra`, its audit entry).
    pub async fn create_owner(&self, owner: &OwnerRecord, extra: Vec<Write>) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(owner).map_err(malformed)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .build()
            .map_err(malformed)?;
        let mut actions =
            vec![TransactWriteItem::builder().put(put).build(), self.token_row_put(&owner.token_hash, &owner.id)?];
        actions.extend(self.actions(&extra)?);
        self.transact(actions).await
    }

    pub async fn get_owner(&self, id: &str) -> Result<Option<OwnerRecord>, StoreError> {
        self.get(keys::owner_pk(id), keys::OWNER_SK.to_string()).await?.map(from_item).transpose()
    }

    /// The owner a token hash belongs to, if it is current.
    pub async fn owner_by_token_hash(&self, hash: &str) -> Result<Option<OwnerRecord>, StoreError> {
        let Some(row) = self.get(keys::owner_token_pk(hash), keys::OWNER_TOKEN_SK.to_string()).await? else {
            return Ok(None);
        };
        let Some(id) = get_s(&row, "owner_id") else { return Ok(None) };
        Ok(self.get_owner(id).await?.filter(|o| o.token_hash == hash))
    }

    /// Every owner, by id (one key-range query on `gsi1`).
    pub async fn list_owners(&self) -> Result<Vec<OwnerRecord>, StoreError> {
        self.gsi1_all(keys::OWNERS_GSI_PK).await
    }

    /// Replaces an owner's name and integrations, only if it is still as read (`old`).
    pub async fn update_owner(
        &self,
        old: &OwnerRecord,
        name: &str,
        integrations: &[String],
        extra: Vec<Write>,
    ) -> Result<(), StoreError> {
        let list = aws_sdk_dynamodb::types::AttributeValue::L(integrations.iter().map(|i| s(i.as_str())).collect());
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(old.pk.clone(), old.sk.clone())))
            .update_expression("SET #name = :name, integrations = :list")
            .condition_expression("token_hash = :hash")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(name))
            .expression_attribute_values(":list", list)
            .expression_attribute_values(":hash", s(&old.token_hash))
            .build()
            .map_err(malformed)?;
        let mut actions = vec![TransactWriteItem::builder().update(update).build()];
        actions.extend(self.actions(&extra)?);
        self.transact(actions).await
    }

    /// Removes an owner and its token row: the token stops working at once.
    pub async fn delete_owner(&self, owner: &OwnerRecord, extra: Vec<Write>) -> Result<(), StoreError> {
        let del = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(owner.pk.clone(), owner.sk.clone())))
            .condition_expression("token_hash = :hash")
            .expression_attribute_values(":hash", s(&owner.token_hash))
            .build()
            .map_err(malformed)?;
        let mut actions =
            vec![TransactWriteItem::builder().delete(del).build(), self.token_row_delete(&owner.token_hash)?];
        actions.extend(self.actions(&extra)?);
        self.transact(actions).await
    }

    /// A new token for an owner: the old one stops working in the same transaction.
    pub async fn rotate_owner_token(
        &self,
        owner: &OwnerRecord,
        new_hash: &str,
        extra: Vec<Write>,
    ) -> Result<(), StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(owner.pk.clone(), owner.sk.clone())))
            .update_expression("SET token_hash = :new")
            .condition_expression("token_hash = :old")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":old", s(&owner.token_hash))
            .build()
            .map_err(malformed)?;
        let mut actions = vec![
            TransactWriteItem::builder().update(update).build(),
            self.token_row_delete(&owner.token_hash)?,
            self.token_row_put(new_hash, &owner.id)?,
        ];
        actions.extend(self.actions(&extra)?);
        self.transact(actions).await
    }
}
