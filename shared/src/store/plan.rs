//! Plans and commits (docs/architecture.md "Plans and commits"). Services decide *what* a
//! change writes and return it as data: a list of [`Write`]s. This module alone turns a plan
//! into DynamoDB transactions: each write's condition, transactions of at most 100 actions,
//! and a cancelled transaction read back as a typed answer ([`StoreError::lost_race`]).
//! So the rules that make a plan are tested without the emulator, and the SDK stays here.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use serde_json::Value;

use super::audit::AuditRow;
use super::fanout::FanoutRow;
use super::offboard::Offboarding;
use super::owners::OwnerRecord;
use super::provisioning::{AssignRow, JobRow, RequestRow};
use super::resources::Kind;
use super::{MAX_TRANSACTION_ITEMS, Store, StoreError, key, keys, n, s};

/// One write of a plan. Rows carry their own keys; the other variants name what they change.
#[derive(Debug, Clone)]
pub enum Write {
    /// A user's desired assignment, only if its sequence number is still the one read
    /// (`None`: no row yet). Every planned user gets one: it orders concurrent writers.
    Assign { row: AssignRow, expect_seq: Option<u64> },
    /// A new job (never overwrites one).
    Job(Box<JobRow>),
    /// A new provisioning request (never overwrites one).
    Request(Box<RequestRow>),
    /// `jobs` more jobs on a request's total (and on its drift count: a `report` resync).
    RequestCount { iid: String, request_id: String, jobs: usize, drift: bool },
    /// A new group fan-out task.
    Fanout(Box<FanoutRow>),
    /// `user_id` is a member of `group_id` (two rows: per group and per user).
    Member { iid: String, group_id: String, user_id: String, display: Option<String> },
    /// `user_id` is no longer a member (idempotent).
    NotMember { iid: String, group_id: String, user_id: String },
    /// A resource's version and lastModified move on without rewriting it (membership
    /// changes); it must exist, be at `expect` when given, and (a group) still have the
    /// folded name `name_key` when given (`Store::touch_group`).
    Touch { iid: String, kind: Kind, id: String, now: String, expect: Option<u64>, name_key: Option<String> },
    /// Writes nothing: the group must exist and, when `name_key` is given, have that folded
    /// name. Each later transaction of a chunked group change carries it
    /// (`service::groups::commit`).
    GroupNamed { iid: String, group_id: String, name_key: Option<String> },
    /// An audit entry.
    Audit(Box<AuditRow>),
    /// The integration is marked offboarding and its SCIM tokens cleared (it must exist and
    /// not be offboarding already).
    OffboardStart { iid: String, offboarding: Offboarding },
    /// The integration's name and configuration (it must exist and not be offboarding).
    IntegrationUpdate { iid: String, name: String, config: Value },
    /// The owner no longer reaches `iid`, only if its token and list are still as read (a
    /// concurrent change of the owner fails the commit instead of being overwritten).
    OwnerDrop { iid: String, owner_id: String, token_hash: String, read: Vec<String> },
}

impl Write {
    /// How many transaction actions this write takes.
    pub fn actions(&self) -> usize {
        match self {
            Write::Member { .. } | Write::NotMember { .. } => 2,
            _ => 1,
        }
    }
}

/// Actions in a list of writes.
pub fn actions_in(writes: &[Write]) -> usize {
    writes.iter().map(Write::actions).sum()
}

/// How to cut units of `sizes` actions (kept whole) into transactions: the first holds at
/// most `first_room` actions, the others [`MAX_TRANSACTION_ITEMS`]. Returns how many units
/// each transaction takes, in order; the first may take none. A unit larger than a whole
/// transaction goes alone (DynamoDB will refuse it, visibly).
pub fn cut(sizes: &[usize], first_room: usize) -> Vec<usize> {
    let mut out = vec![0];
    let mut used = 0;
    let mut room = first_room;
    for &size in sizes {
        if used + size > room && (used > 0 || room < MAX_TRANSACTION_ITEMS) {
            out.push(0);
            used = 0;
            room = MAX_TRANSACTION_ITEMS;
        }
        *out.last_mut().expect("never empty") += 1;
        used += size;
    }
    out
}

/// The writes that take `iid` away from every owner reaching it, each conditioned on the
/// owner's list as read.
pub fn owners_drop(iid: &str, owners: &[OwnerRecord]) -> Vec<Write> {
    owners
        .iter()
        .filter(|o| o.integrations.iter().any(|i| i == iid))
        .map(|o| Write::OwnerDrop {
            iid: iid.to_string(),
            owner_id: o.id.clone(),
            token_hash: o.token_hash.clone(),
            read: o.integrations.clone(),
        })
        .collect()
}

fn malformed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Malformed(e.to_string())
}

fn update(store: &Store, pk: String, sk: String) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    Update::builder().table_name(&store.table).set_key(Some(key(pk, sk)))
}

impl Store {
    /// The transaction actions of a plan, in its order (a cancellation's reasons line up with
    /// them, `Write::Member` counting two).
    pub(super) fn actions(&self, writes: &[Write]) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut out = Vec::with_capacity(actions_in(writes));
        for w in writes {
            match w {
                Write::Assign { row, expect_seq } => out.push(self.assign_put(row, *expect_seq)?),
                Write::Job(row) => out.push(self.job_put(row)?),
                Write::Request(row) => out.push(self.request_put(row)?),
                Write::RequestCount { iid, request_id, jobs, drift } => {
                    let expression = if *drift { "ADD #total :n, drift :n" } else { "ADD #total :n" };
                    let up = update(self, keys::integration_pk(iid), keys::request_sk(request_id))
                        .update_expression(expression)
                        .expression_attribute_names("#total", "total")
                        .expression_attribute_values(":n", n(*jobs as u64))
                        .build()
                        .map_err(malformed)?;
                    out.push(TransactWriteItem::builder().update(up).build());
                }
                Write::Fanout(row) => out.push(self.fanout_put(row)?),
                Write::Member { iid, group_id, user_id, display } => {
                    out.extend(self.member_puts(iid, group_id, user_id, display.as_deref())?)
                }
                Write::NotMember { iid, group_id, user_id } => out.extend(self.member_deletes(iid, group_id, user_id)?),
                Write::Touch { iid, kind, id, now, expect, name_key } => {
                    let mut up = update(self, keys::integration_pk(iid), kind.sk(id))
                        .update_expression("SET #lm = :now ADD #version :one")
                        .expression_attribute_names("#lm", "last_modified")
                        .expression_attribute_names("#version", "version")
                        .expression_attribute_names("#pk", keys::PK)
                        .expression_attribute_values(":now", s(now.as_str()))
                        .expression_attribute_values(":one", n(1));
                    let mut condition = vec!["attribute_exists(#pk)"];
                    if let Some(v) = expect {
                        condition.push("#version = :version");
                        up = up.expression_attribute_values(":version", n(*v));
                    }
                    if let Some(k) = name_key {
                        // A row not written since names were first kept has none, and so was not
                        // renamed since: nothing to check.
                        condition.push("(attribute_not_exists(#nk) OR #nk = :name_key)");
                        up = up
                            .expression_attribute_names("#nk", "name_key")
                            .expression_attribute_values(":name_key", s(k.as_str()));
                    }
                    up = up.condition_expression(condition.join(" AND "));
                    out.push(TransactWriteItem::builder().update(up.build().map_err(malformed)?).build());
                }
                Write::GroupNamed { iid, group_id, name_key } => {
                    let check = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(keys::integration_pk(iid), Kind::Group.sk(group_id))))
                        .expression_attribute_names("#pk", keys::PK);
                    let check = match name_key {
                        // As `Touch`: a row with no name kept was not renamed since.
                        Some(k) => check
                            .condition_expression(
                                "attribute_exists(#pk) AND (attribute_not_exists(#nk) OR #nk = :name_key)",
                            )
                            .expression_attribute_names("#nk", "name_key")
                            .expression_attribute_values(":name_key", s(k.as_str())),
                        None => check.condition_expression("attribute_exists(#pk)"),
                    };
                    out.push(TransactWriteItem::builder().condition_check(check.build().map_err(malformed)?).build());
                }
                Write::Audit(row) => out.push(self.audit_put(row)?),
                Write::OffboardStart { iid, offboarding } => out.push(self.offboard_start_action(iid, offboarding)?),
                Write::IntegrationUpdate { iid, name, config } => {
                    out.push(self.integration_update_action(iid, name, config)?)
                }
                Write::OwnerDrop { iid, owner_id, token_hash, read } => {
                    let rest = read.iter().filter(|i| *i != iid).map(|i| s(i.as_str())).collect();
                    let read = read.iter().map(|i| s(i.as_str())).collect();
                    let up = update(self, keys::owner_pk(owner_id), keys::OWNER_SK.to_string())
                        .update_expression("SET integrations = :rest")
                        .condition_expression("token_hash = :hash AND integrations = :read")
                        .expression_attribute_values(":rest", AttributeValue::L(rest))
                        .expression_attribute_values(":read", AttributeValue::L(read))
                        .expression_attribute_values(":hash", s(token_hash))
                        .build()
                        .map_err(malformed)?;
                    out.push(TransactWriteItem::builder().update(up).build());
                }
            }
        }
        Ok(out)
    }

    /// Commits a plan in one transaction: all of it or none. A write whose condition did not
    /// hold cancels it ([`StoreError::lost_race`]).
    pub async fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.transact(self.actions(writes)?).await
    }

    /// Commits writes that need not be atomic with each other (member rows of a large change)
    /// in as many transactions as they need, in order.
    pub async fn commit_in_chunks(&self, writes: &[Write]) -> Result<(), StoreError> {
        let sizes: Vec<usize> = writes.iter().map(Write::actions).collect();
        let mut start = 0;
        for count in cut(&sizes, MAX_TRANSACTION_ITEMS) {
            self.commit(&writes[start..start + count]).await?;
            start += count;
        }
        Ok(())
    }

    /// The writes that take `iid` away from its owners (reads the owners).
    pub async fn owners_drop(&self, iid: &str) -> Result<Vec<Write>, StoreError> {
        Ok(owners_drop(iid, &self.list_owners().await?))
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
