//! Group membership as rows: `MEMBER#<group>#<user>` (listed per group) and its reverse
//! `MEMBEROF#<user>#<group>` (listed per user). Adding or removing a member writes rows only;
//! nothing reads, modifies and writes back a member list, so concurrent PATCHes never lose a member.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::resources::{Kind, Stored};
use super::{Store, StoreError, get_s, key, keys, s};

/// One membership row as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub display: Option<String>,
}

/// A member row as a [`Member`].
fn member(row: &super::Item) -> Option<Member> {
    let id = get_s(row, "user_id")?.to_string();
    Some(Member { id, display: get_s(row, "display").map(str::to_string) })
}

impl Store {
    /// The two puts that make `user_id` a member of `group_id`; `display` is kept as the
    /// client sent it and returned as is.
    pub(in crate::store) fn member_puts(
        &self,
        iid: &str,
        group_id: &str,
        user_id: &str,
        display: Option<&str>,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let pk = keys::integration_pk(iid);
        let row = |sk: String| -> Result<TransactWriteItem, StoreError> {
            let mut item = key(pk.clone(), sk);
            item.insert("group_id".into(), s(group_id));
            item.insert("user_id".into(), s(user_id));
            if let Some(d) = display {
                item.insert("display".into(), s(d));
            }
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Malformed(e.to_string()))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        Ok([row(keys::member_sk(group_id, user_id))?, row(keys::member_of_sk(user_id, group_id))?])
    }

    /// The two deletes that end a membership (idempotent: deleting a non-member is fine).
    pub(in crate::store) fn member_deletes(
        &self,
        iid: &str,
        group_id: &str,
        user_id: &str,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let pk = keys::integration_pk(iid);
        let row = |sk: String| -> Result<TransactWriteItem, StoreError> {
            let del = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), sk)))
                .build()
                .map_err(|e| StoreError::Malformed(e.to_string()))?;
            Ok(TransactWriteItem::builder().delete(del).build())
        };
        Ok([row(keys::member_sk(group_id, user_id))?, row(keys::member_of_sk(user_id, group_id))?])
    }

    /// A group's members, in user-id order.
    pub async fn group_members(&self, iid: &str, group_id: &str) -> Result<Vec<Member>, StoreError> {
        let rows = self.query_all(keys::integration_pk(iid), keys::member_prefix(group_id)).await?;
        Ok(rows.iter().filter_map(member).collect())
    }

    /// At most `limit` of a group's members after the user id `after`, in user-id order, and
    /// whether more follow: what a response shows without loading a large group whole.
    pub async fn group_members_upto(
        &self,
        iid: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Member>, bool), StoreError> {
        let pk = keys::integration_pk(iid);
        let mut start = after.map(|u| key(pk.clone(), keys::member_sk(group_id, u)));
        let mut members = Vec::new();
        loop {
            let want = (limit + 1 - members.len()).min(1000) as i32;
            let (rows, next) = self.query_prefix(pk.clone(), keys::member_prefix(group_id), start, want).await?;
            members.extend(rows.iter().filter_map(member));
            match next {
                Some(k) if members.len() <= limit => start = Some(k),
                _ => break,
            }
        }
        let more = members.len() > limit;
        members.truncate(limit);
        Ok((members, more))
    }

    /// Group ids a user belongs to.
    pub async fn user_groups(&self, iid: &str, user_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.query_all(keys::integration_pk(iid), keys::member_of_prefix(user_id)).await?;
        Ok(rows.iter().filter_map(|r| get_s(r, "group_id").map(str::to_string)).collect())
    }

    /// Runs actions that need not be atomic with each other (member rows of a large change)
    /// in transactions of at most 100.
    pub(in crate::store) async fn transact_chunked(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        for chunk in items.chunks(super::MAX_TRANSACTION_ITEMS) {
            self.transact(chunk.to_vec()).await?;
        }
        Ok(())
    }
}

/// A group-name uniqueness row as (group id, folded displayName).
pub(super) fn group_name_entry(item: &super::Item) -> Option<(String, String)> {
    let sk = get_s(item, keys::SK)?.strip_prefix(keys::GROUP_NAME_PREFIX)?;
    Some((get_s(item, "id")?.to_string(), sk.to_string()))
}

// Role groups and memberships asked for by the provisioning planner.
impl Store {
    /// Group ids for displayNames (through the uniqueness rows), for the role-mapped groups.
    pub async fn group_ids_by_name(&self, iid: &str, names: &[String]) -> Result<HashMap<String, String>, StoreError> {
        let pk = keys::integration_pk(iid);
        let items = self.batch_get(names.iter().map(|n| key(pk.clone(), keys::group_name_sk(n))).collect()).await?;
        Ok(items.iter().filter_map(group_name_entry).collect())
    }

    /// Users by id and, in the same read, the ids of the groups named `names` (as
    /// [`Self::group_ids_by_name`]): a group change's planner reads both after the users'
    /// assignments, in one call when they fit in one BatchGetItem.
    pub async fn users_and_group_names(
        &self,
        iid: &str,
        ids: &[String],
        names: &[String],
    ) -> Result<(Vec<Stored>, HashMap<String, String>), StoreError> {
        let pk = keys::integration_pk(iid);
        let mut wanted: Vec<super::Item> =
            ids.iter().filter(|id| keys::is_resource_id(id)).map(|id| key(pk.clone(), Kind::User.sk(id))).collect();
        wanted.extend(names.iter().map(|n| key(pk.clone(), keys::group_name_sk(n))));
        let (mut users, mut groups) = (Vec::new(), HashMap::new());
        for item in self.batch_get(wanted).await? {
            match group_name_entry(&item) {
                Some((id, name)) => {
                    groups.insert(id, name);
                }
                None => users.push(Stored::from_item(item)?),
            }
        }
        Ok((users, groups))
    }

    /// Which `(group, user)` memberships exist among those asked (BatchGetItem).
    pub async fn memberships(
        &self,
        iid: &str,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let pk = keys::integration_pk(iid);
        let items = self.batch_get(pairs.iter().map(|(g, u)| key(pk.clone(), keys::member_sk(g, u))).collect()).await?;
        Ok(items
            .iter()
            .filter_map(|i| Some((get_s(i, "group_id")?.to_string(), get_s(i, "user_id")?.to_string())))
            .collect())
    }
}
