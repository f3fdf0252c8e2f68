//! User and Group resource rows with their uniqueness rows (userName / displayName,
//! externalId), written together in one transaction with an optimistic lock on `version`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::plan::Write;
use super::{Item, Store, StoreError, keys, n};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

/// A group's displayName as names compare (docs/contract.md "Unicode and case"), kept on its
/// row as `name_key`.
pub fn name_key(display_name: &str) -> String {
    crate::scim::text::fold(display_name, false).into_owned()
}

fn group_name_key(doc: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    doc.get("displayName").and_then(serde_json::Value::as_str).map(name_key)
}

/// The two SCIM resource kinds idlcm stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    pub fn sk(self, id: &str) -> String {
        match self {
            Kind::User => keys::user_sk(id),
            Kind::Group => keys::group_sk(id),
        }
    }
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::User => keys::USER_PREFIX,
            Kind::Group => keys::GROUP_PREFIX,
        }
    }
    /// The attribute unique per integration, case-insensitively.
    pub fn unique_attr(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
    pub fn unique_sk(self, value: &str) -> String {
        match self {
            Kind::User => keys::user_name_sk(value),
            Kind::Group => keys::group_name_sk(value),
        }
    }
}

/// A stored resource: the normalised document plus server-kept metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: String,
    pub doc: Map<String, Value>,
    pub version: u64,
    pub created: String,
    pub last_modified: String,
}

#[derive(Serialize, Deserialize)]
struct ResourceRow {
    pk: String,
    sk: String,
    id: String,
    doc: String,
    version: u64,
    created: String,
    last_modified: String,
    /// A group's displayName in its comparison form: a membership change commits only while the
    /// group still has the name it was planned with ([`Store::touch_group`]). Absent on users,
    /// and on groups last written before 2026-12-04.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct UniqueRow {
    pk: String,
    sk: String,
    id: String,
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// Another resource has this `userName`/`displayName` or `externalId`.
    Conflict(&'static str),
    /// The resource changed (or vanished) since it was read.
    VersionMismatch,
    /// Another action of the transaction lost a race (a user's assignment changed): re-read, retry.
    Contended,
    Store(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

fn unique_keys(kind: Kind, doc: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(Value::String(v)) = doc.get(kind.unique_attr()) {
        out.push((kind.unique_attr(), kind.unique_sk(v)));
    }
    if let Some(Value::String(v)) = doc.get("externalId") {
        out.push(("externalId", keys::external_id_sk(kind.name(), v)));
    }
    out
}

fn to_item<T: Serialize>(v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Malformed(e.to_string()))
}

impl Stored {
    pub(crate) fn from_item(item: Item) -> Result<Self, StoreError> {
        let row: ResourceRow = serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed(e.to_string()))?;
        let doc = match serde_json::from_str(&row.doc) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(StoreError::Malformed(format!("resource {} has no JSON object", row.id)));
            }
        };
        Ok(Stored { id: row.id, doc, version: row.version, created: row.created, last_modified: row.last_modified })
    }

    /// The resource's own DynamoDB item.
    fn row_item(&self, iid: &str, kind: Kind) -> Result<Item, StoreError> {
        to_item(&ResourceRow {
            pk: keys::integration_pk(iid),
            sk: kind.sk(&self.id),
            id: self.id.clone(),
            doc: Value::Object(self.doc.clone()).to_string(),
            version: self.version,
            created: self.created.clone(),
            last_modified: self.last_modified.clone(),
            name_key: match kind {
                Kind::Group => group_name_key(&self.doc),
                Kind::User => None,
            },
        })
    }

    /// The DynamoDB items of this resource: its row and its uniqueness rows (for imports that
    /// write with BatchWriteItem; ordinary writes go through the transactions below).
    pub fn items(&self, iid: &str, kind: Kind) -> Result<Vec<Item>, StoreError> {
        let mut items = vec![self.row_item(iid, kind)?];
        for (_, sk) in unique_keys(kind, &self.doc) {
            items.push(to_item(&UniqueRow { pk: keys::integration_pk(iid), sk, id: self.id.clone() })?);
        }
        Ok(items)
    }
}

impl Store {
    fn put_resource(
        &self,
        iid: &str,
        kind: Kind,
        r: &Stored,
        condition: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = r.row_item(iid, kind)?;
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = match condition {
            None => put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", keys::PK),
            Some(v) => put
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(v)),
        };
        let put = put.build().map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn put_unique(&self, iid: &str, sk: String, id: &str) -> Result<TransactWriteItem, StoreError> {
        let row = UniqueRow { pk: keys::integration_pk(iid), sk, id: id.to_string() };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&row)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_key(&self, iid: &str, sk: String) -> Result<TransactWriteItem, StoreError> {
        let del = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(super::key(keys::integration_pk(iid), sk)))
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().delete(del).build())
    }

    /// Maps a cancelled transaction to the constraint that failed; `labels[i]` names action i
    /// (`None`: the resource itself). Actions past the labels are the caller's extras.
    fn classify(err: StoreError, labels: &[Option<&'static str>]) -> WriteError {
        if let StoreError::Cancelled(reasons) = &err {
            for (i, r) in reasons.iter().enumerate() {
                if r.as_deref() == Some("ConditionalCheckFailed") {
                    return match labels.get(i) {
                        Some(Some(attr)) => WriteError::Conflict(attr),
                        Some(None) => WriteError::VersionMismatch,
                        None => WriteError::Contended,
                    };
                }
            }
        }
        WriteError::Store(err)
    }

    /// Creates a resource with its uniqueness rows; `extra` actions (member rows) join the transaction.
    pub async fn create_resource(
        &self,
        iid: &str,
        kind: Kind,
        id: String,
        doc: Map<String, Value>,
        now: &str,
        extra: Vec<Write>,
    ) -> Result<Stored, WriteError> {
        let stored = Stored { id, doc, version: 1, created: now.to_string(), last_modified: now.to_string() };
        let mut items = vec![self.put_resource(iid, kind, &stored, None)?];
        let mut labels = vec![None];
        for (attr, sk) in unique_keys(kind, &stored.doc) {
            items.push(self.put_unique(iid, sk, &stored.id)?);
            labels.push(Some(attr));
        }
        items.extend(self.actions(&extra)?);
        self.transact(items).await.map_err(|e| Self::classify(e, &labels))?;
        Ok(stored)
    }

    /// Writes a new document over `old`, only if `old.version` is still current. Uniqueness rows
    /// follow changed values. `extra` actions join the transaction.
    pub async fn replace_resource(
        &self,
        iid: &str,
        kind: Kind,
        old: &Stored,
        doc: Map<String, Value>,
        now: &str,
        extra: Vec<Write>,
    ) -> Result<Stored, WriteError> {
        let new = Stored {
            id: old.id.clone(),
            doc,
            version: old.version + 1,
            created: old.created.clone(),
            last_modified: now.to_string(),
        };
        let mut items = vec![self.put_resource(iid, kind, &new, Some(old.version))?];
        let mut labels = vec![None];
        let before = unique_keys(kind, &old.doc);
        let after = unique_keys(kind, &new.doc);
        for (_, sk) in before.iter().filter(|b| !after.iter().any(|a| a.1 == b.1)) {
            items.push(self.delete_key(iid, sk.clone())?);
            labels.push(None);
        }
        for (attr, sk) in after.iter().filter(|a| !before.iter().any(|b| b.1 == a.1)) {
            items.push(self.put_unique(iid, sk.clone(), &new.id)?);
            labels.push(Some(*attr));
        }
        items.extend(self.actions(&extra)?);
        self.transact(items).await.map_err(|e| Self::classify(e, &labels))?;
        Ok(new)
    }

    /// Moves a group's version on without rewriting it (a membership change), with `extra`
    /// writes in the same transaction; only at `expect` when given, and only while the group
    /// still has the name of `planned` (the group as read). Who gets a role from the change
    /// was decided by that name; a rename in between fails it (`VersionMismatch`), and the
    /// change is planned again. Without this, a member added while the group was renamed
    /// could be missed by the rename's re-plan, which pages through the members it can see.
    /// Every write of a group row keeps its name, a rename included, so only a group not
    /// written since the name was first kept (and so not renamed since) has none.
    pub async fn touch_group(
        &self,
        iid: &str,
        planned: &Stored,
        now: &str,
        expect: Option<u64>,
        extra: Vec<Write>,
    ) -> Result<(), WriteError> {
        let touch = Write::Touch {
            iid: iid.into(),
            kind: Kind::Group,
            id: planned.id.clone(),
            now: now.into(),
            expect,
            name_key: group_name_key(&planned.doc),
        };
        let mut writes = vec![touch];
        writes.extend(extra);
        let items = self.actions(&writes)?;
        self.transact(items).await.map_err(|e| match &e {
            _ if e.condition_failed_at(0) => WriteError::VersionMismatch,
            StoreError::Cancelled(_) => WriteError::Contended,
            _ => WriteError::Store(e),
        })
    }

    /// Deletes a resource and its uniqueness rows, only at `old.version`; `extra` actions join.
    pub async fn delete_resource(
        &self,
        iid: &str,
        kind: Kind,
        old: &Stored,
        extra: Vec<Write>,
    ) -> Result<(), WriteError> {
        let del = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(super::key(keys::integration_pk(iid), kind.sk(&old.id))))
            .condition_expression("#version = :version")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", n(old.version))
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().delete(del).build()];
        let mut labels = vec![None];
        for (attr, sk) in unique_keys(kind, &old.doc) {
            items.push(self.delete_key(iid, sk)?);
            labels.push(Some(attr));
        }
        items.extend(self.actions(&extra)?);
        self.transact(items).await.map_err(|e| Self::classify(e, &labels))
    }

    pub async fn get_resource(&self, iid: &str, kind: Kind, id: &str) -> Result<Option<Stored>, StoreError> {
        if !keys::is_resource_id(id) {
            return Ok(None);
        }
        match self.get(keys::integration_pk(iid), kind.sk(id)).await? {
            Some(item) => Stored::from_item(item).map(Some),
            None => Ok(None),
        }
    }

    /// Many resources by id (BatchGetItem); missing ones are absent from the result.
    pub async fn get_resources(&self, iid: &str, kind: Kind, ids: &[String]) -> Result<Vec<Stored>, StoreError> {
        let pk = keys::integration_pk(iid);
        let request: Vec<Item> =
            ids.iter().filter(|id| keys::is_resource_id(id)).map(|id| super::key(pk.clone(), kind.sk(id))).collect();
        self.batch_get(request).await?.into_iter().map(Stored::from_item).collect()
    }

    /// Looks a resource up through a uniqueness row (`userName`/`displayName` or `externalId`).
    pub async fn find_unique(
        &self,
        iid: &str,
        kind: Kind,
        attr: &str,
        value: &str,
    ) -> Result<Option<Stored>, StoreError> {
        if value.len() > keys::MAX_KEY_VALUE_BYTES {
            return Ok(None);
        }
        let sk = if attr.eq_ignore_ascii_case("externalId") {
            keys::external_id_sk(kind.name(), value)
        } else {
            kind.unique_sk(value)
        };
        let Some(row) = self.get(keys::integration_pk(iid), sk).await? else {
            return Ok(None);
        };
        let Some(id) = super::get_s(&row, "id") else {
            return Ok(None);
        };
        self.get_resource(iid, kind, id).await
    }

    /// One page of an integration's resources of a kind, in id (creation) order.
    pub async fn list_page(
        &self,
        iid: &str,
        kind: Kind,
        start: Option<Item>,
        limit: i32,
    ) -> Result<(Vec<Stored>, Option<Item>), StoreError> {
        let (items, next) =
            self.query_prefix(keys::integration_pk(iid), kind.prefix().to_string(), start, limit).await?;
        let rows = items.into_iter().map(Stored::from_item).collect::<Result<Vec<_>, _>>()?;
        Ok((rows, next))
    }
}
