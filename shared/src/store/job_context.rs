//! Rows read together in one BatchGetItem (strongly consistent) instead of one GetItem each;
//! the read units are the same, the calls fewer:
//! - what the worker reads before it runs a job: the integration's configuration, the user's
//!   desired assignment, what was last applied to the app, and the stored user;
//! - what a change to a user (PUT, PATCH, DELETE) reads: the user and its desired assignment,
//!   with the ids of the integration's role-mapped groups.

use std::collections::HashMap;

use super::integrations::IntegrationRecord;
use super::provisioning::{AppliedRow, AssignRow, from_item};
use super::resources::{Kind, Stored};
use super::{Store, StoreError, get_s, key, keys};

/// A user, its desired assignment, and role-group ids by name ([`Store::user_assign_and_groups`]).
pub type UserAssignGroups = (Option<Stored>, Option<AssignRow>, HashMap<String, String>);

/// The rows a job runs against; each may be missing.
#[derive(Debug, Default)]
pub struct JobContext {
    pub integration: Option<IntegrationRecord>,
    pub assign: Option<AssignRow>,
    pub applied: Option<AppliedRow>,
    pub user: Option<Stored>,
}

impl Store {
    pub async fn job_context(&self, iid: &str, user_id: &str) -> Result<JobContext, StoreError> {
        let pk = keys::integration_pk(iid);
        let (config_sk, assign_sk, applied_sk) =
            (keys::CONFIG_SK.to_string(), keys::assign_sk(user_id), keys::applied_sk(user_id));
        let user_sk = keys::is_resource_id(user_id).then(|| Kind::User.sk(user_id));
        let mut wanted = vec![
            key(pk.clone(), config_sk.clone()),
            key(pk.clone(), assign_sk.clone()),
            key(pk.clone(), applied_sk.clone()),
        ];
        if let Some(sk) = &user_sk {
            wanted.push(key(pk.clone(), sk.clone()));
        }
        let mut context = JobContext::default();
        for item in self.batch_get(wanted).await? {
            let sk = get_s(&item, keys::SK).unwrap_or_default().to_string();
            if sk == config_sk {
                context.integration =
                    Some(serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed(e.to_string()))?);
            } else if sk == assign_sk {
                context.assign = Some(from_item(item)?);
            } else if sk == applied_sk {
                context.applied = Some(from_item(item)?);
            } else if user_sk.as_deref() == Some(sk.as_str()) {
                context.user = Some(Stored::from_item(item)?);
            }
        }
        Ok(context)
    }

    /// A user and its desired assignment (either may be missing).
    pub async fn user_and_assign(
        &self,
        iid: &str,
        user_id: &str,
    ) -> Result<(Option<Stored>, Option<AssignRow>), StoreError> {
        let (user, assign, _) = self.user_assign_and_groups(iid, user_id, &[]).await?;
        Ok((user, assign))
    }

    /// [`Self::user_and_assign`], and in the same read the ids of the groups named `names` (the
    /// role-mapped groups: id -> folded displayName, as [`Self::group_ids_by_name`]).
    pub async fn user_assign_and_groups(
        &self,
        iid: &str,
        user_id: &str,
        names: &[String],
    ) -> Result<UserAssignGroups, StoreError> {
        let pk = keys::integration_pk(iid);
        let mut wanted: Vec<_> = names.iter().map(|n| key(pk.clone(), keys::group_name_sk(n))).collect();
        let known = keys::is_resource_id(user_id);
        let (user_sk, assign_sk) = (Kind::User.sk(user_id), keys::assign_sk(user_id));
        if known {
            wanted.push(key(pk.clone(), user_sk.clone()));
            wanted.push(key(pk, assign_sk.clone()));
        }
        let (mut user, mut assign, mut groups) = (None, None, HashMap::new());
        if wanted.is_empty() {
            return Ok((user, assign, groups));
        }
        for item in self.batch_get(wanted).await? {
            let sk = get_s(&item, keys::SK).unwrap_or_default().to_string();
            if known && sk == user_sk {
                user = Some(Stored::from_item(item)?);
            } else if known && sk == assign_sk {
                assign = Some(from_item(item)?);
            } else if let Some((id, name)) = super::members::group_name_entry(&item) {
                groups.insert(id, name);
            }
        }
        Ok((user, assign, groups))
    }
}
