//! Group membership as rows: `MEMBER#<group>#<user>` (listed per group) and its reverse
//! `MEMBEROF#<user>#<group>` (listed per user). Adding or removing a member writes rows only;
//! nothing reads, modifies and writes back a member list, so concurrent PATCHes never lose a member.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::provisioning::AssignRow;
use super::resources::{Kind, Stored};
use super::{BATCH_GET_MAX, Store, StoreError, get_s, key, keys, s};

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
/// How many of `names` (role groups' name rows) a group change reads with its members'
/// assignments rather than with their documents, both reads being `ids` keys in calls of
/// [`BATCH_GET_MAX`]: those the documents' last call has no room for, as many as the
/// assignments' last call has. The same rows in the fewest calls (99 members and two role
/// groups: two calls of 100 keys, not 99 + 101).
pub fn names_read_with_assigns(ids: usize, names: usize) -> usize {
    if ids == 0 {
        return 0;
    }
    let room = (BATCH_GET_MAX - ids % BATCH_GET_MAX) % BATCH_GET_MAX;
    names.saturating_sub(room).min(room)
}

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

    /// The `ASSIGN#` rows of these users, by user id, and, in the same read, the
    /// ids of the groups named `names`: the role groups that the assignments' last call has
    /// room for ([`names_read_with_assigns`]).
    pub async fn assigns_and_group_names(
        &self,
        iid: &str,
        ids: &[String],
        names: &[String],
    ) -> Result<(HashMap<String, AssignRow>, HashMap<String, String>), StoreError> {
        let pk = keys::integration_pk(iid);
        let sks = ids.iter().map(|u| keys::assign_sk(u)).collect();
        let (rows, groups) = self.rows_and_group_names(&pk, sks, names).await?;
        let mut assigns = HashMap::new();
        for item in rows {
            let row: AssignRow = super::provisioning::from_item(item)?;
            assigns.insert(row.user_id.clone(), row);
        }
        Ok((assigns, groups))
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
        let sks = ids.iter().filter(|id| keys::is_resource_id(id)).map(|id| Kind::User.sk(id)).collect();
        let (rows, groups) = self.rows_and_group_names(&pk, sks, names).await?;
        Ok((rows.into_iter().map(Stored::from_item).collect::<Result<_, _>>()?, groups))
    }

    /// The rows at `sks` and, in the same read, the ids of the groups named `names` (group id
    /// -> folded name), told apart by their keys.
    async fn rows_and_group_names(
        &self,
        pk: &str,
        sks: Vec<String>,
        names: &[String],
    ) -> Result<(Vec<super::Item>, HashMap<String, String>), StoreError> {
        let mut wanted: Vec<super::Item> = sks.into_iter().map(|sk| key(pk.to_string(), sk)).collect();
        wanted.extend(names.iter().map(|n| key(pk.to_string(), keys::group_name_sk(n))));
        let (mut rows, mut groups) = (Vec::new(), HashMap::new());
        for item in self.batch_get(wanted).await? {
            match group_name_entry(&item) {
                Some((id, name)) => {
                    groups.insert(id, name);
                }
                None => rows.push(item),
            }
        }
        Ok((rows, groups))
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

#[cfg(test)]
mod tests {
    use super::names_read_with_assigns;

    #[test]
    fn role_group_names_fill_the_room_the_documents_read_lacks() {
        // 99 members, two role groups: one name in each read, two calls of 100 keys.
        assert_eq!(names_read_with_assigns(99, 2), 1);
        // Room in the documents' call for both: none moves.
        assert_eq!(names_read_with_assigns(98, 2), 0);
        assert_eq!(names_read_with_assigns(1, 2), 0);
        // No room in either: a third call whatever the split; the documents' read takes them.
        assert_eq!(names_read_with_assigns(100, 2), 0);
        // Only what the assignments' call has room for.
        assert_eq!(names_read_with_assigns(199, 5), 1);
        assert_eq!(names_read_with_assigns(97, 8), 3);
        // No member read: no assignments' call to join.
        assert_eq!(names_read_with_assigns(0, 2), 0);
        assert_eq!(names_read_with_assigns(99, 0), 0);
    }
}
