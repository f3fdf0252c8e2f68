use super::*;

/// When the offboarding began; rows below were written before it.
const SINCE: &str = "2026-12-04T12:00:00.000Z";

fn row(user: &str, desired: Option<Assignment>) -> AssignRow {
    AssignRow::new("i1", user, desired.as_ref(), 3, "2026-12-04T00:00:00.000Z")
}

fn assigned(active: bool, role: &str) -> Assignment {
    Assignment { active, role: Some(role.into()), ..Assignment::default() }
}

fn none() -> HashMap<String, Assignment> {
    HashMap::new()
}

#[test]
fn an_account_the_app_still_holds_is_offboarded_even_when_its_desired_state_is_gone() {
    // u1: deleted through SCIM, its deprovision failed: nothing desired, the account still there.
    // u2: deactivated in idlcm, the app not told yet: still active there.
    let rows = vec![row("u1", None), row("u2", Some(assigned(false, "admin")))];
    let applied =
        HashMap::from([("u1".to_string(), assigned(true, "admin")), ("u2".to_string(), assigned(true, "admin"))]);
    let removed = plan(&rows, &applied, OffboardMode::Deprovision, SINCE);
    assert_eq!(removed.iter().map(|p| p.user_id.as_str()).collect::<Vec<_>>(), ["u1", "u2"]);
    assert_eq!(removed[0].before.as_ref().map(|a| a.active), Some(true), "the job shows what the app holds");
    let deactivated = plan(&rows, &applied, OffboardMode::Deactivate, SINCE);
    assert_eq!(deactivated.len(), 2);
    assert!(deactivated.iter().all(|p| p.after.as_ref().is_some_and(|a| !a.active)));
}

#[test]
fn deprovisioning_plans_every_user_the_app_holds_and_nobody_else() {
    let rows =
        vec![row("u1", Some(assigned(true, "admin"))), row("u2", None), row("u3", Some(assigned(false, "viewer")))];
    let plans = plan(&rows, &none(), OffboardMode::Deprovision, SINCE);
    let users: Vec<&str> = plans.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["u1", "u3"], "u2 has nothing in the app");
    for p in &plans {
        assert!(p.after.is_none());
        assert_eq!(p.expect_seq, Some(3), "written under the sequence read");
    }
    assert_eq!(plans[0].change().unwrap().action.as_str(), "deprovision");
}

#[test]
fn deactivating_keeps_the_role_and_skips_who_is_inactive_already() {
    let rows =
        vec![row("u1", Some(assigned(true, "admin"))), row("u2", Some(assigned(false, "viewer"))), row("u3", None)];
    let plans = plan(&rows, &none(), OffboardMode::Deactivate, SINCE);
    assert_eq!(plans.len(), 1, "only u1 changes");
    let after = plans[0].after.clone().expect("the account stays");
    assert_eq!((after.active, after.role.as_deref()), (false, Some("admin")));
    assert_eq!(plans[0].change().unwrap().action.as_str(), "deactivate");
}

#[test]
fn a_page_planned_again_after_its_commit_plans_nothing() {
    // The account is still in the app (the jobs have not run): a page run again must not plan
    // a second job for the users its first run planned.
    let applied = HashMap::from([("u1".to_string(), assigned(true, "admin"))]);
    let rows = vec![row("u1", Some(assigned(true, "admin")))];
    for mode in [OffboardMode::Deprovision, OffboardMode::Deactivate] {
        let first = plan(&rows, &applied, mode, SINCE);
        assert_eq!(first.len(), 1);
        // What the first run committed: the target, written after the offboarding began.
        let committed = AssignRow::new("i1", "u1", first[0].after.as_ref(), 4, "2026-12-04T12:00:01.000Z");
        assert!(plan(&[committed], &applied, mode, SINCE).is_empty(), "{mode:?}");
    }
}

#[test]
fn the_mode_is_parsed_with_deprovision_by_default() {
    assert_eq!(OffboardMode::parse(None), Some(OffboardMode::Deprovision));
    assert_eq!(OffboardMode::parse(Some("deactivate")), Some(OffboardMode::Deactivate));
    assert_eq!(OffboardMode::parse(Some("delete")), None);
}
