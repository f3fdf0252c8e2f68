//! Rows read together in one BatchGetItem (strongly consistent) instead of one GetItem each;
//! the read units are the same, the calls fewer:
//! - what the worker reads before it runs a job: the integration's configuration, the user's
//!   desired assignment, what was last applied to the app, and the stored user;
//! - what a change to a user (PUT, PATCH, DELETE) reads: the user and its desired assignment.

use super::integrations::IntegrationRecord;
use super::provisioning::{AppliedRow, AssignRow, from_item};
use super::resources::{Kind, Stored};
use super::{Store, StoreError, get_s, key, keys};

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
        if !keys::is_resource_id(user_id) {
            return Ok((None, None));
        }
        let pk = keys::integration_pk(iid);
        let (user_sk, assign_sk) = (Kind::User.sk(user_id), keys::assign_sk(user_id));
        let (mut user, mut assign) = (None, None);
        for item in self.batch_get(vec![key(pk.clone(), user_sk.clone()), key(pk, assign_sk.clone())]).await? {
            let sk = get_s(&item, keys::SK).unwrap_or_default().to_string();
            if sk == user_sk {
                user = Some(Stored::from_item(item)?);
            } else if sk == assign_sk {
                assign = Some(from_item(item)?);
            }
        }
        Ok((user, assign))
    }
}
