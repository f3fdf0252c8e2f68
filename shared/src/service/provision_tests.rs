//! The provisioning plan of a change, without the emulator: which rows a user's change writes,
//! how jobs are numbered and marked for the sweeper, when a request row is written, and how a
//! group change moves each member's role.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::*;
use crate::store::plan::Write;

const NOW: &str = "2026-12-04T10:00:00.000Z";

fn origin() -> Origin {
    Origin { integration_id: "i1".into(), method: "PATCH".into(), path: "/Users/u1".into(), expires_at: 1_900_000_000 }
}

fn provision() -> Provision {
    Provision::planned(origin(), "01REQ".into(), NOW.into(), 1)
}

fn assigned(role: &str, active: bool) -> Assignment {
    Assignment { active, role: Some(role.into()), ..Assignment::default() }
}

fn plan(user: &str, seq: Option<u64>, before: Option<Assignment>, after: Option<Assignment>) -> UserPlan {
    let doc: Map<String, Value> = json!({"userName": format!("{user}@example.com")}).as_object().unwrap().clone();
    let row = seq.map(|s| AssignRow::new("i1", user, before.as_ref(), s, NOW));
    UserPlan::new(user, Some(&doc), row.as_ref(), after)
}

fn jobs(writes: &[Write]) -> Vec<&JobRow> {
    writes.iter().filter_map(|w| if let Write::Job(j) = w { Some(&**j) } else { None }).collect()
}

#[test]
fn a_user_whose_assignment_does_not_change_writes_its_sequence_and_makes_no_job() {
    let mut p = provision();
    let same = assigned("viewer", true);
    let out = p.user_writes(&plan("u1", Some(3), Some(same.clone()), Some(same)));
    assert!(out.message.is_none(), "nothing for the app to do");
    match &out.writes[..] {
        [Write::Assign { row, expect_seq }] => {
            assert_eq!(*expect_seq, Some(3), "only if nobody wrote since the read");
            assert_eq!(row.seq, 4);
        }
        other => panic!("expected the ASSIGN# row alone, got {other:?}"),
    }
    assert!(p.request_write(Kind::User, Some("u1"), 0, false).is_none(), "no job, no Activity request");
}

#[test]
fn a_change_makes_a_queued_job_the_sweeper_can_find_and_a_message_naming_it() {
    let mut p = provision();
    let out = p.user_writes(&plan("u1", Some(7), Some(assigned("viewer", true)), Some(assigned("admin", true))));
    let job = jobs(&out.writes)[0];
    assert_eq!(job.status, status::QUEUED);
    assert_eq!(job.action, "update");
    assert_eq!(job.seq, 8, "the job carries the sequence it was planned at");
    assert_eq!(job.user_name.as_deref(), Some("u1@example.com"));
    assert_eq!(job.gsi1pk.as_deref(), Some(keys::QUEUED_GSI_PK), "in the sweeper's queued index");
    assert!(job.before.as_deref().unwrap_or_default().contains("viewer"));
    assert!(job.after.as_deref().unwrap_or_default().contains("admin"));
    assert_eq!(job.expires_at, Some(1_900_000_000));
    assert!(!job.solo, "a request that may hold several jobs counts them apart");
    let message = out.message.expect("a message for the job");
    assert_eq!((message.job_id.as_str(), message.user_id.as_str()), (job.id.as_str(), "u1"));
}

#[test]
fn jobs_of_one_request_are_numbered_in_plan_order_and_a_fanout_page_continues_its_numbers() {
    let mut p = provision();
    let a = p.user_writes(&plan("u1", None, None, Some(assigned("viewer", true))));
    let b = p.user_writes(&plan("u2", None, None, Some(assigned("viewer", true))));
    assert_eq!(jobs(&a.writes)[0].id, "01REQ-00001");
    assert_eq!(jobs(&b.writes)[0].id, "01REQ-00002");
    assert_eq!(jobs(&a.writes)[0].action, "provision");
    let mut page = Provision::planned(origin(), "01REQ".into(), NOW.into(), FANOUT_FIRST_JOB as usize);
    let c = page.user_writes(&plan("u3", None, None, Some(assigned("viewer", true))));
    assert_eq!(jobs(&c.writes)[0].id, "01REQ-100000", "after every inline job");
}

#[test]
fn a_page_of_users_counts_exactly_the_jobs_it_makes_on_its_request() {
    let mut p = provision();
    let plans = [
        plan("u1", Some(1), Some(assigned("viewer", true)), Some(assigned("admin", true))),
        plan("u2", Some(1), Some(assigned("viewer", true)), Some(assigned("viewer", true))),
        plan("u3", Some(1), Some(assigned("viewer", true)), None),
    ];
    let (writes, messages) = p.users_writes(plans.iter());
    assert_eq!(messages.len(), 2, "u2 has nothing to do");
    assert_eq!(jobs(&writes).len(), 2);
    assert_eq!(jobs(&writes)[1].action, "deprovision");
    match writes.last() {
        Some(Write::RequestCount { request_id, jobs, drift: false, .. }) => {
            assert_eq!((request_id.as_str(), *jobs), ("01REQ", 2));
        }
        other => panic!("the page ends with its request's count, got {other:?}"),
    }
}

#[test]
fn a_single_users_job_closes_its_own_request_and_a_deleted_user_keeps_its_last_resource() {
    let mut p = provision().alone();
    let mut deleted = plan("u1", Some(2), Some(assigned("viewer", true)), None);
    deleted.snapshot = Some(json!({"id": "u1", "userName": "u1@example.com"}));
    let out = p.user_writes(&deleted);
    let job = jobs(&out.writes)[0];
    assert!(job.solo);
    assert!(job.user_snapshot.as_deref().unwrap_or_default().contains("u1@example.com"));
    match p.request_write(Kind::User, Some("u1"), 1, false) {
        Some(Write::Request(r)) => {
            assert_eq!((r.total, r.status.as_str(), r.method.as_str()), (1, status::REQUESTED, "PATCH"));
            assert_eq!(r.path, "/Users/u1");
            assert!(!r.fanout_pending);
        }
        other => panic!("expected the request row, got {other:?}"),
    }
}

#[test]
fn a_group_change_with_no_listed_job_still_opens_the_request_its_fanout_adds_to() {
    let p = provision();
    match p.request_write(Kind::Group, Some("g1"), 0, true) {
        Some(Write::Request(r)) => assert!(r.fanout_pending && r.total == 0),
        other => panic!("expected a request awaiting its fan-out, got {other:?}"),
    }
}

fn config() -> IntegrationConfig {
    IntegrationConfig::from_json(json!({
        "name": "t",
        "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"},
        "roles": {"attribute": "roles", "default": "viewer", "groups": [
            {"group": "CRM Admins", "role": "admin", "priority": 20},
            {"group": "CRM Editors", "role": "editor", "priority": 10}]},
        "attributes": ["userName"],
    }))
    .unwrap()
}

fn stored(id: &str) -> Stored {
    let doc = json!({"userName": format!("{id}@example.com"), "active": true}).as_object().unwrap().clone();
    Stored { id: id.into(), doc, version: 1, created: NOW.into(), last_modified: NOW.into() }
}

#[test]
fn a_role_group_change_gives_joiners_its_role_and_leavers_their_other_groups_role() {
    let cfg = config();
    let docs: HashMap<String, Stored> = ["u1", "u2", "u3"].iter().map(|u| (u.to_string(), stored(u))).collect();
    // u2 is also in CRM Editors; u3 in nothing else.
    let names = HashMap::from([("u2".to_string(), vec!["CRM Editors".to_string()])]);
    let affected: Affected = vec![
        ("u1".into(), true),
        ("u2".into(), false),
        ("u3".into(), false),
        ("u1".into(), true),
        ("gone".into(), true),
    ];
    let plans = group_change_plans(&cfg, &docs, &HashMap::new(), names, Some("CRM Admins"), &affected);
    let roles: Vec<(&str, Option<&str>)> =
        plans.iter().map(|p| (p.user_id.as_str(), p.after.as_ref().and_then(|a| a.role.as_deref()))).collect();
    assert_eq!(roles, [("u1", Some("admin")), ("u2", Some("editor")), ("u3", Some("viewer"))]);
    assert!(plans.iter().all(|p| p.expect_seq.is_none()), "no ASSIGN# row was read");
}

#[test]
fn a_group_that_grants_no_role_moves_nobody() {
    let cfg = config();
    let docs: HashMap<String, Stored> = [("u1".to_string(), stored("u1"))].into();
    let before = effective(&docs["u1"].doc, &[], &cfg);
    assert_eq!(before.role.as_deref(), Some("viewer"));
    let row = AssignRow::new("i1", "u1", Some(&before), 5, NOW);
    let rows = HashMap::from([("u1".to_string(), row)]);
    let plans = group_change_plans(&cfg, &docs, &rows, HashMap::new(), None, &vec![("u1".into(), true)]);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].expect_seq, Some(5));
    assert!(plans[0].change().is_none(), "joining a plain group changes nothing for the app: {:?}", plans[0].after);
}

#[test]
fn a_users_role_groups_are_picked_from_its_groups_by_name() {
    let group = |id: &str, name: Value| Stored {
        id: id.into(),
        doc: json!({"displayName": name}).as_object().unwrap().clone(),
        version: 1,
        created: NOW.into(),
        last_modified: NOW.into(),
    };
    let member_of =
        [group("g-other", json!("Sales")), group("g-ed", json!("crm EDITORS")), group("g-ad", json!("CRM Admins"))];
    // Names fold as the uniqueness rows do; the order is the groups'.
    assert_eq!(role_group_names(&config(), &member_of), vec!["crm editors".to_string(), "crm admins".into()]);
    assert!(role_group_names(&config(), &member_of[..1]).is_empty(), "a group without a role gives none");
    assert!(role_group_names(&config(), &[group("g-x", Value::Null)]).is_empty(), "a group without a name");
    let plain = IntegrationConfig::from_json(json!({
        "name": "t",
        "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"},
    }))
    .unwrap();
    assert!(role_group_names(&plain, &member_of).is_empty(), "no role groups configured");
}
