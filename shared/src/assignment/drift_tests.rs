use serde_json::json;

use super::*;
use crate::assignment::Action;

fn desired(active: bool, role: Option<&str>, email: &str) -> Assignment {
    Assignment {
        active,
        role: role.map(String::from),
        attributes: [("email".to_string(), json!(email)), ("given_name".to_string(), json!("Ada"))]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

fn account(id: &str, active: Option<bool>, role: Option<Option<&str>>, email: &str) -> AppAccount {
    AppAccount {
        id: id.into(),
        key: Some(email.into()),
        active,
        role: role.map(|r| r.map(String::from)),
        attributes: [("email".to_string(), json!(email))].into_iter().collect(),
    }
}

#[test]
fn an_account_that_matches_is_no_drift_whatever_the_app_does_not_report() {
    let want = desired(true, Some("admin"), "ada@example.com");
    // The app reports no given_name and spells the email and role in other case.
    let acct = account("u1", Some(true), Some(Some("Admin")), "ADA@example.com");
    assert_eq!(compare(Some(&want), Some(&acct)), None);
    // Nothing reported but the id: nothing to compare.
    let bare = AppAccount { id: "u1".into(), ..Default::default() };
    assert_eq!(compare(Some(&want), Some(&bare)), None);
}

#[test]
fn a_changed_role_and_a_reactivated_leaver_are_drift_with_the_right_correction() {
    let want = desired(true, Some("user"), "ada@example.com");
    let promoted = account("u1", Some(true), Some(Some("admin")), "ada@example.com");
    let drift = compare(Some(&want), Some(&promoted)).unwrap();
    assert_eq!(drift.change, Change { action: Action::Update, changed: vec!["role".into()] });
    assert_eq!(drift.actual.unwrap().role.as_deref(), Some("admin"));

    let leaver = desired(false, Some("user"), "bob@example.com");
    let back = account("u2", Some(true), Some(Some("user")), "bob@example.com");
    let drift = compare(Some(&leaver), Some(&back)).unwrap();
    assert_eq!(drift.change.action, Action::Deactivate);
    assert_eq!(drift.change.changed, vec!["active".to_string()]);
}

#[test]
fn missing_and_leftover_accounts() {
    let want = desired(true, Some("user"), "ada@example.com");
    assert_eq!(compare(Some(&want), None).unwrap().change.action, Action::Provision);
    // A deactivated user the app does not have: nothing to do.
    assert_eq!(compare(Some(&desired(false, None, "x@y")), None), None);
    // A deprovisioned user whose account is still there: deprovision it.
    let left = account("u9", None, None, "gone@example.com");
    let drift = compare(None, Some(&left)).unwrap();
    assert_eq!(drift.change.action, Action::Deprovision);
    assert!(drift.actual.is_some_and(|a| a.active));
    // A deactivated account of a deactivated user, whatever its role: agreed.
    let off = account("u3", Some(false), Some(Some("admin")), "x@y");
    assert_eq!(compare(Some(&desired(false, Some("user"), "x@y")), Some(&off)), None);
}

#[test]
fn attributes_compare_by_value() {
    let want = desired(true, None, "ada@example.com");
    let mut acct = account("u1", Some(true), Some(None), "ada@example.com");
    acct.attributes.insert("given_name".into(), json!("Ada "));
    assert_eq!(compare(Some(&want), Some(&acct)), None, "trailing space is not drift");
    acct.attributes.insert("given_name".into(), json!("ada"));
    let drift = compare(Some(&want), Some(&acct)).unwrap();
    assert_eq!(drift.change.changed, vec!["attributes.given_name".to_string()]);
}

#[test]
fn matcher_prefers_the_app_id_and_falls_back_to_keys() {
    let accounts =
        vec![account("u1", Some(true), None, "ada@example.com"), account("u2", Some(true), None, "bob@example.com")];
    let m = Matcher::new(&accounts);
    assert_eq!(m.find(Some("u2"), ["ada@example.com"]).map(|a| a.id.as_str()), Some("u2"));
    // A recorded id the app no longer has: the account is gone, not someone else's.
    assert_eq!(m.find(Some("u7"), ["ada@example.com"]), None);
    assert_eq!(m.find(None, ["nobody", " ADA@example.com"]).map(|a| a.id.as_str()), Some("u1"));
    let user = json!({"userName": "bob", "emails": [{"value": "bob@example.com"}]});
    let keys = user_keys(user.as_object().unwrap());
    assert_eq!(m.find(None, keys).map(|a| a.id.as_str()), Some("u2"));
    let matched: HashSet<String> = ["u1".to_string()].into();
    assert_eq!(unmanaged(&accounts, &matched).iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["u2"]);
}

#[test]
fn redelivery_sends_the_desired_state_of_everyone_still_managed() {
    assert_eq!(redeliver(Some(&desired(true, None, "x@y"))).unwrap().action, Action::Update);
    assert_eq!(redeliver(Some(&desired(false, None, "x@y"))).unwrap().action, Action::Deactivate);
    assert_eq!(redeliver(None), None);
}
