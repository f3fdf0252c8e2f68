//! Rows read together in one BatchGetItem (strongly consistent) instead of one GetItem each;
//! the read units are the same, the calls fewer:
//! - what the worker reads before it runs a job: the integration's configuration, the user's
//!   desired assignment, what was last applied to the app, and the stored user;
//! - what a change to a user (PUT, PATCH, DELETE) reads: the user and its desired assignment;
//! - what a SCIM request about one resource (or a webhook's callback about one job) reads
//!   first ([`Store::integration_and`]): the integration's configuration, to check the token
//!   (or the signature), with that resource's rows
//!   ([`Prefetch`]), which the service then uses for its first attempt ([`Prefetched`]).

use std::collections::HashMap;

use super::integrations::IntegrationRecord;
use super::provisioning::{AppliedRow, AssignRow, JobRow, from_item};
use super::resources::{Kind, Stored};
use super::{Item, Store, StoreError, get_s, key, keys};

/// The rows of the one resource a SCIM request is about, read with the integration's
/// configuration (docs/architecture.md "One read before the token check").
#[derive(Debug, Clone, PartialEq)]
pub enum Prefetch {
    /// Nothing beyond the configuration (a create, a list, discovery).
    Nothing,
    /// A user (`GET /Users/{id}`).
    User(String),
    /// A user and its desired assignment (`PUT`, `PATCH`, `DELETE /Users/{id}`).
    UserChange(String),
    /// A group (`GET`, `PUT`, `PATCH`, `DELETE /Groups/{id}`).
    Group(String),
    /// A job (a webhook's callback for it).
    Job(String),
}

impl Prefetch {
    /// The sort keys to read. An id that cannot be ours reads nothing (it is answered 404).
    fn sks(&self) -> Vec<String> {
        match self {
            Prefetch::User(id) if keys::is_resource_id(id) => vec![Kind::User.sk(id)],
            Prefetch::UserChange(id) if keys::is_resource_id(id) => vec![Kind::User.sk(id), keys::assign_sk(id)],
            Prefetch::Group(id) if keys::is_resource_id(id) => vec![Kind::Group.sk(id)],
            Prefetch::Job(id) if keys::is_job_id(id) => vec![keys::job_sk(id)],
            _ => Vec::new(),
        }
    }
}

/// Rows read with the configuration: for each sort key asked, the item or its absence. A row
/// not asked for answers `None`, and the caller reads it itself. Only a first attempt uses
/// them: an attempt after a lost race reads afresh.
#[derive(Debug, Default)]
pub struct Prefetched {
    rows: Vec<(String, Option<Item>)>,
}

impl Prefetched {
    fn row(&self, sk: &str) -> Option<Option<&Item>> {
        self.rows.iter().find(|(s, _)| s == sk).map(|(_, item)| item.as_ref())
    }

    /// A user or group as read with the configuration (`Some(None)`: it does not exist).
    pub fn resource(&self, kind: Kind, id: &str) -> Option<Result<Option<Stored>, StoreError>> {
        let item = self.row(&kind.sk(id))?;
        Some(item.map(|i| Stored::from_item(i.clone())).transpose())
    }

    /// A job as read with the configuration (`Some(None)`: it does not exist).
    pub fn job(&self, job_id: &str) -> Option<Result<Option<JobRow>, StoreError>> {
        let item = self.row(&keys::job_sk(job_id))?;
        Some(item.map(|i| from_item(i.clone())).transpose())
    }

    /// A user and its desired assignment, when both were read with the configuration.
    pub fn user_and_assign(&self, user_id: &str) -> Option<Result<UserAndAssign, StoreError>> {
        let user = self.resource(Kind::User, user_id)?;
        let assign = self.row(&keys::assign_sk(user_id))?;
        Some(user.and_then(|u| Ok((u, assign.map(|a| from_item(a.clone())).transpose()?))))
    }
}

/// A user and its desired assignment; either may be missing.
pub type UserAndAssign = (Option<Stored>, Option<AssignRow>);

/// The rows a job runs against; each may be missing.
#[derive(Debug, Default)]
pub struct JobContext {
    pub integration: Option<IntegrationRecord>,
    pub assign: Option<AssignRow>,
    pub applied: Option<AppliedRow>,
    pub user: Option<Stored>,
}

impl Store {
    /// An integration's configuration and the rows `prefetch` names, in one strongly
    /// consistent read (a GetItem when it names none).
    pub async fn integration_and(
        &self,
        iid: &str,
        prefetch: &Prefetch,
    ) -> Result<(Option<IntegrationRecord>, Prefetched), StoreError> {
        let sks = prefetch.sks();
        if sks.is_empty() {
            return Ok((self.get_integration(iid).await?, Prefetched::default()));
        }
        let pk = keys::integration_pk(iid);
        let mut wanted = vec![key(pk.clone(), keys::CONFIG_SK.to_string())];
        wanted.extend(sks.iter().map(|sk| key(pk.clone(), sk.clone())));
        let mut found: HashMap<String, Item> = HashMap::new();
        for item in self.batch_get(wanted).await? {
            found.insert(get_s(&item, keys::SK).unwrap_or_default().to_string(), item);
        }
        let integration = match found.remove(keys::CONFIG_SK) {
            Some(item) => Some(serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed(e.to_string()))?),
            None => None,
        };
        let rows = sks.into_iter().map(|sk| (sk.clone(), found.remove(&sk))).collect();
        Ok((integration, Prefetched { rows }))
    }

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
    pub async fn user_and_assign(&self, iid: &str, user_id: &str) -> Result<UserAndAssign, StoreError> {
        if !keys::is_resource_id(user_id) {
            return Ok((None, None));
        }
        let pk = keys::integration_pk(iid);
        let (user_sk, assign_sk) = (Kind::User.sk(user_id), keys::assign_sk(user_id));
        let (mut user, mut assign) = (None, None);
        for item in self.batch_get(vec![key(pk.clone(), user_sk.clone()), key(pk, assign_sk)]).await? {
            match get_s(&item, keys::SK) == Some(user_sk.as_str()) {
                true => user = Some(Stored::from_item(item)?),
                false => assign = Some(from_item(item)?),
            }
        }
        Ok((user, assign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01J0000000000000000000000A";

    #[test]
    fn a_prefetch_names_the_rows_of_its_resource_and_nothing_for_a_foreign_id() {
        assert_eq!(Prefetch::User(ID.into()).sks(), vec![Kind::User.sk(ID)]);
        assert_eq!(Prefetch::UserChange(ID.into()).sks(), vec![Kind::User.sk(ID), keys::assign_sk(ID)]);
        assert_eq!(Prefetch::Group(ID.into()).sks(), vec![Kind::Group.sk(ID)]);
        assert!(Prefetch::UserChange("../CONFIG".into()).sks().is_empty());
        assert!(Prefetch::Nothing.sks().is_empty());
        let job = format!("{ID}-00001");
        assert_eq!(Prefetch::Job(job.clone()).sks(), vec![keys::job_sk(&job)]);
        for foreign in
            ["x-1", "01J0000000000000000000000A", "01J0000000000000000000000A-", "01J0000000000000000000000A-1x"]
        {
            assert!(Prefetch::Job(foreign.into()).sks().is_empty(), "{foreign}");
        }
        assert!(Prefetch::Job(format!("{ID}-{}", "1".repeat(2000))).sks().is_empty(), "a key DynamoDB would refuse");
    }

    #[test]
    fn prefetched_rows_answer_only_for_what_was_read() {
        // The user was asked for and is absent; its assignment was not asked for.
        let p = Prefetched { rows: vec![(Kind::User.sk(ID), None)] };
        assert!(matches!(p.resource(Kind::User, ID), Some(Ok(None))));
        assert!(p.resource(Kind::Group, ID).is_none(), "a group was not read");
        assert!(p.user_and_assign(ID).is_none(), "the assignment was not read: the caller reads both");
        let p = Prefetched { rows: vec![(Kind::User.sk(ID), None), (keys::assign_sk(ID), None)] };
        assert!(matches!(p.user_and_assign(ID), Some(Ok((None, None)))));
    }
}
