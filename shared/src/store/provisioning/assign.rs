//! Each user's desired assignment (`ASSIGN#`) and what the worker last applied to the app
//! (`APPLIED#`).

use super::*;

/// A user's desired assignment. `seq` grows with every write that reads or changes it, so a
/// write conditioned on it sees every concurrent change to the user's inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssignRow {
    pub pk: String,
    pub sk: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
    pub seq: u64,
    pub updated_at: String,
}

impl AssignRow {
    pub fn new(iid: &str, user_id: &str, desired: Option<&Assignment>, seq: u64, now: &str) -> Self {
        Self {
            pk: keys::integration_pk(iid),
            sk: keys::assign_sk(user_id),
            user_id: user_id.to_string(),
            desired: assignment_json(desired),
            seq,
            updated_at: now.to_string(),
        }
    }
    pub fn desired(&self) -> Option<Assignment> {
        parse_assignment(self.desired.as_deref())
    }
}

/// What the app holds for a user, as far as idlcm applied it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedRow {
    pub pk: String,
    pub sk: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// The `ASSIGN#` sequence number this state was taken from.
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    pub updated_at: String,
    /// A webhook delivery the app has not confirmed yet (sent, or answered `202`): the job,
    /// what it sent and that state's `ASSIGN#` sequence number. While it is set, later jobs of
    /// the user wait (docs/contract.md "Webhook delivery and callbacks"); recording an applied
    /// state (a full put) clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_sent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_seq: Option<u64>,
}

impl AppliedRow {
    pub fn applied(&self) -> Option<Assignment> {
        parse_assignment(self.applied.as_deref())
    }
}

impl Store {
    /// Writes a user's desired assignment, only if its sequence number is still `expect`
    /// (`None`: the row must not exist yet).
    pub(in crate::store) fn assign_put(
        &self,
        row: &AssignRow,
        expect: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = to_item(row)?;
        match expect {
            None => self.put_action(item, Some(("attribute_not_exists(#pk)", vec![]))),
            Some(seq) => self.put_action(item, Some(("attribute_exists(#pk) AND seq = :seq", vec![(":seq", n(seq))]))),
        }
    }

    pub async fn get_assign(&self, iid: &str, user_id: &str) -> Result<Option<AssignRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::assign_sk(user_id)).await?.map(from_item).transpose()
    }

    pub async fn get_applied(&self, iid: &str, user_id: &str) -> Result<Option<AppliedRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::applied_sk(user_id)).await?.map(from_item).transpose()
    }

    /// What the app last held for each of these users (one BatchGetItem per 100), by user id;
    /// users the app holds nothing for are left out.
    pub async fn applied_states(
        &self,
        iid: &str,
        user_ids: &[String],
    ) -> Result<HashMap<String, Assignment>, StoreError> {
        let pk = keys::integration_pk(iid);
        let mut out = HashMap::new();
        for item in self.batch_get(user_ids.iter().map(|u| key(pk.clone(), keys::applied_sk(u))).collect()).await? {
            let row: AppliedRow = from_item(item)?;
            if let Some(state) = row.applied() {
                out.insert(row.user_id, state);
            }
        }
        Ok(out)
    }

    /// Records what the app now holds, unless a newer state was recorded already.
    pub async fn put_applied(&self, row: &AppliedRow) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(row)?))
            .condition_expression("attribute_not_exists(#pk) OR seq <= :seq")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":seq", n(row.seq))
            .send()
            .await;
        Ok(StoreError::conditional("PutItem", result)?.is_some())
    }

    /// Records what the app now holds for a user (never going back to an older state).
    pub async fn record_applied(
        &self,
        iid: &str,
        user_id: &str,
        state: Option<&Assignment>,
        seq: u64,
        app_id: Option<String>,
    ) -> Result<(), StoreError> {
        let row = AppliedRow {
            pk: keys::integration_pk(iid),
            sk: keys::applied_sk(user_id),
            user_id: user_id.to_string(),
            applied: assignment_json(state),
            seq,
            app_id,
            updated_at: crate::time::now(),
            pending_job: None,
            pending_sent: None,
            pending_seq: None,
        };
        self.put_applied(&row).await.map(|_| ())
    }
}
