use super::*;

fn row(user: &str, desired: Option<Assignment>) -> AssignRow {
    AssignRow::new("i1", user, desired.as_ref(), 3, "2026-12-04T00:00:00.000Z")
}

fn assigned(active: bool, role: &str) -> Assignment {
    Assignment { active, role: Some(role.into()), ..Assignment::default() }
}

#[test]
fn deprovisioning_plans_every_user_the_app_holds_and_nobody_else() {
    let rows =
        vec![row("u1", Some(assigned(true, "admin"))), row("u2", None), row("u3", Some(assigned(false, "viewer")))];
    let plans = plan(&rows, OffboardMode::Deprovision);
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
    let plans = plan(&rows, OffboardMode::Deactivate);
    assert_eq!(plans.len(), 1, "only u1 changes");
    let after = plans[0].after.clone().expect("the account stays");
    assert_eq!((after.active, after.role.as_deref()), (false, Some("admin")));
    assert_eq!(plans[0].change().unwrap().action.as_str(), "deactivate");
}

#[test]
fn a_page_planned_again_after_its_commit_plans_nothing() {
    let rows = vec![row("u1", Some(assigned(true, "admin")))];
    let first = plan(&rows, OffboardMode::Deprovision);
    let again = vec![row("u1", first[0].after.clone())];
    assert!(plan(&again, OffboardMode::Deprovision).is_empty());
    let deactivated = plan(&rows, OffboardMode::Deactivate);
    let again = vec![row("u1", deactivated[0].after.clone())];
    assert!(plan(&again, OffboardMode::Deactivate).is_empty());
}

#[test]
fn the_mode_is_parsed_with_deprovision_by_default() {
    assert_eq!(OffboardMode::parse(None), Some(OffboardMode::Deprovision));
    assert_eq!(OffboardMode::parse(Some("deactivate")), Some(OffboardMode::Deactivate));
    assert_eq!(OffboardMode::parse(Some("delete")), None);
}
