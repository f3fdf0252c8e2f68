//! Every DynamoDB key idlcm writes is built here (single-table design, docs/architecture.md "Data model").
//! All items of an integration live under `pk = INTEGRATION#<id>`.

pub const PK: &str = "pk";
pub const SK: &str = "sk";

pub fn integration_pk(integration_id: &str) -> String {
    format!("INTEGRATION#{integration_id}")
}

pub const CONFIG_SK: &str = "CONFIG";

pub const USER_PREFIX: &str = "USER#";
pub const GROUP_PREFIX: &str = "GROUP#";

pub fn user_sk(user_id: &str) -> String {
    format!("{USER_PREFIX}{user_id}")
}

pub fn group_sk(group_id: &str) -> String {
    format!("{GROUP_PREFIX}{group_id}")
}

/// Uniqueness row for a userName; userName is case-insensitive (RFC 7643 caseExact=false).
pub fn user_name_sk(user_name: &str) -> String {
    format!("USERNAME#{}", crate::scim::text::fold(user_name, false))
}

/// Uniqueness row for a group displayName (case-insensitive).
pub const GROUP_NAME_PREFIX: &str = "GROUPNAME#";

pub fn group_name_sk(display_name: &str) -> String {
    format!("{GROUP_NAME_PREFIX}{}", crate::scim::text::fold(display_name, false))
}

/// Uniqueness row for an externalId (case-exact), per resource type.
pub fn external_id_sk(resource_type: &str, external_id: &str) -> String {
    format!("EXTERNALID#{resource_type}#{external_id}")
}

/// Membership row, listed per group.
pub fn member_sk(group_id: &str, user_id: &str) -> String {
    format!("{}{user_id}", member_prefix(group_id))
}

pub fn member_prefix(group_id: &str) -> String {
    format!("MEMBER#{group_id}#")
}

/// Reverse membership row, listed per user.
pub fn member_of_sk(user_id: &str, group_id: &str) -> String {
    format!("{}{group_id}", member_of_prefix(user_id))
}

pub fn member_of_prefix(user_id: &str) -> String {
    format!("MEMBEROF#{user_id}#")
}

/// A user's desired assignment and its sequence number (bumped by every change to it).
pub fn assign_sk(user_id: &str) -> String {
    format!("{ASSIGN_PREFIX}{user_id}")
}

pub const ASSIGN_PREFIX: &str = "ASSIGN#";

/// A resync's working rows (docs/contract.md "Resync and drift"): `APP` pages hold the app's
/// accounts as read, `SEEN` pages the accounts a compared page of users matched. Deleted
/// when the resync ends.
pub fn resync_part_sk(task_id: &str, part: &str, n: u32) -> String {
    format!("RESYNC#{task_id}#{part}#{n:06}")
}

pub fn resync_part_prefix(task_id: &str, part: &str) -> String {
    format!("RESYNC#{task_id}#{part}#")
}

/// An integration owner (docs/contract.md "Owners and audit"), and the row that finds an
/// owner by the hash of its token.
pub fn owner_pk(id: &str) -> String {
    format!("OWNER#{id}")
}

pub const OWNER_SK: &str = "OWNER";

pub fn owner_token_pk(hash: &str) -> String {
    format!("OWNERTOKEN#{hash}")
}

pub const OWNER_TOKEN_SK: &str = "OWNERTOKEN";

/// GSI `gsi1`: every owner, by id.
pub const OWNERS_GSI_PK: &str = "OWNERS";

/// Audit entries: `AUDIT#<ulid>` under their integration or under `pk = AUDIT`, and all of
/// them in the `AUDIT` partition of `gsi1`.
pub const AUDIT_PK: &str = "AUDIT";

/// The marker of a deleted integration whose rows are still being removed (`store::purge`):
/// outside the integration's partition, so it outlives the purge it tracks.
pub fn purge_pk(integration_id: &str) -> String {
    format!("PURGE#{integration_id}")
}
pub const PURGE_SK: &str = "PURGE";
/// `gsi1` partition of the purge markers, by time then integration: the sweeper resumes those
/// that stalled.
pub const PURGE_GSI_PK: &str = "PURGE";

pub fn audit_sk(id: &str) -> String {
    format!("AUDIT#{id}")
}

/// When an integration's scheduled resync last started (`resync.every_hours`).
pub const RESYNC_SCHEDULE_SK: &str = "RESYNC_SCHEDULE";

/// The last resync's list of app accounts no managed user matches: a head row, and the
/// accounts in numbered chunks under the resync's request id.
pub const UNMANAGED_SK: &str = "UNMANAGED";

pub fn unmanaged_chunk_sk(request_id: &str, n: u32) -> String {
    format!("UNMANAGED#{request_id}#{n:04}")
}

/// The assignment last applied to the app for a user, written by the worker.
pub fn applied_sk(user_id: &str) -> String {
    format!("APPLIED#{user_id}")
}

/// A fan-out task: a group's members re-planned in pages behind a SCIM request.
pub fn fanout_sk(id: &str) -> String {
    format!("FANOUT#{id}")
}

/// GSI `gsi1`, sparse: fan-out tasks by their last progress, for the sweeper to resume.
pub const FANOUT_GSI_PK: &str = "FANOUT";

pub fn fanout_gsi_sk(at: &str, integration_id: &str, id: &str) -> String {
    format!("{at}#{integration_id}#{id}")
}

/// Sort-key prefix of request rows (the Activity feed reads them in key order).
pub const REQUEST_PREFIX: &str = "REQUEST#";

/// A provisioning request (one SCIM write that changed assignments).
pub fn request_sk(request_id: &str) -> String {
    format!("{REQUEST_PREFIX}{request_id}")
}

/// A job: one user's change within a request. Job ids are `<request id>-<n>`, so a job id
/// alone locates its request (callbacks and retries carry only the job id).
pub fn job_sk(job_id: &str) -> String {
    format!("JOB#{job_id}")
}

pub fn job_prefix(request_id: &str) -> String {
    format!("JOB#{request_id}-")
}

pub fn job_id(request_id: &str, n: usize) -> String {
    format!("{request_id}-{n:05}")
}

/// The request a job id belongs to.
pub fn request_of_job(job_id: &str) -> Option<&str> {
    job_id.rsplit_once('-').map(|(r, _)| r).filter(|r| is_resource_id(r))
}

/// `<request ulid>-<n>`, the shape of every job id.
pub fn is_job_id(id: &str) -> bool {
    request_of_job(id).is_some()
        && id
            .rsplit_once('-')
            .is_some_and(|(_, n)| (1..=10).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// GSI `gsi1`: every integration (admin listing).
pub const INTEGRATIONS_GSI_PK: &str = "INTEGRATIONS";

/// GSI `gsi2`: a user's jobs across requests, by job id (time).
pub fn user_jobs_gsi_pk(integration_id: &str, user_id: &str) -> String {
    format!("USERJOBS#{integration_id}#{user_id}")
}
pub const GSI2: &str = "gsi2";
pub const GSI2_PK: &str = "gsi2pk";
pub const GSI2_SK: &str = "gsi2sk";

/// An integration's shared request count for one limit window (`store::limits`).
pub fn limit_sk(window: u64) -> String {
    format!("LIMIT#{window}")
}

/// The TTL attribute of request and job rows (epoch seconds; template.yaml `Table`).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// GSI `gsi1`, sparse: jobs still `queued`, by time, for the sweeper. Removed when a worker
/// picks the job up.
pub const QUEUED_GSI_PK: &str = "QUEUED";

/// GSI `gsi1`, sparse: jobs `running` (or awaiting a webhook callback), by the time they are
/// overdue, for the sweeper to fail ("no job left behind"). Removed when the job finishes.
pub const DEADLINE_GSI_PK: &str = "DEADLINE";

pub fn deadline_gsi_sk(deadline: &str, integration_id: &str, job_id: &str) -> String {
    format!("{deadline}#{integration_id}#{job_id}")
}
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";

/// Resource ids are ULIDs; anything else cannot exist, so it is answered 404 without a read.
pub fn is_resource_id(id: &str) -> bool {
    id.len() == 26 && ulid::Ulid::from_string(id).is_ok()
}

/// Longest userName/displayName/externalId accepted: keeps keys under DynamoDB's 1 KB sort-key limit.
pub const MAX_KEY_VALUE_BYTES: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_do_not_overlap() {
        // `USER#` must not select `USERNAME#` rows when listing users.
        assert!(!user_name_sk("x").starts_with(USER_PREFIX));
        assert!(!group_name_sk("x").starts_with(GROUP_PREFIX));
        assert_eq!(user_name_sk("Alice@X.com"), "USERNAME#alice@x.com");
        assert!(member_sk("g", "u").starts_with(&member_prefix("g")));
    }

    #[test]
    fn job_ids_locate_their_request() {
        let rid = ulid::Ulid::new().to_string();
        let jid = job_id(&rid, 7);
        assert_eq!(request_of_job(&jid), Some(rid.as_str()));
        assert!(job_sk(&jid).starts_with(&job_prefix(&rid)));
        assert_eq!(request_of_job("nonsense"), None);
        assert_eq!(request_of_job("x-1"), None);
        assert!(is_job_id(&jid));
        // Its request's shape with another suffix: never read (a key over DynamoDB's 1 KB).
        assert!(!is_job_id(&format!("{rid}-{}", "7".repeat(2000))));
        assert!(!is_job_id(&format!("{rid}-seven")));
        assert!(!is_job_id(&format!("{rid}-")));
    }

    #[test]
    fn only_ulids_are_ids() {
        assert!(is_resource_id(&ulid::Ulid::new().to_string()));
        assert!(!is_resource_id("010101001010101011001010101011"));
        assert!(!is_resource_id("00919288221112222"));
        assert!(!is_resource_id("../etc"));
    }
}
