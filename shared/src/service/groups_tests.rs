//! Which membership rows a group write plans, without the emulator.

use super::*;

fn delta(reset: bool, set: &[(&str, bool)]) -> MemberDelta {
    MemberDelta { reset, set: set.iter().map(|(u, m)| (u.to_string(), *m)).collect() }
}

fn users(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|u| u.to_string()).collect()
}

fn planned(bundles: &[Bundle]) -> Vec<(String, bool)> {
    bundles.iter().map(|b| (b.user_id.clone(), b.member_after)).collect()
}

#[test]
fn a_patch_adds_existing_users_and_removes_the_named_ones() {
    let displays = Displays::from([("u1".to_string(), "Ann".to_string())]);
    let d = delta(false, &[("u1", true), ("stranger", true), ("u2", false)]);
    let bundles = member_changes("i1", "g1", &d, None, &users(&["u1"]), &displays);
    assert_eq!(planned(&bundles), [("u1".to_string(), true), ("u2".to_string(), false)], "no row for a stranger");
    match &bundles[0].row {
        Write::Member { group_id, user_id, display, .. } => {
            assert_eq!((group_id.as_str(), user_id.as_str(), display.as_deref()), ("g1", "u1", Some("Ann")));
        }
        other => panic!("expected a member row, got {other:?}"),
    }
    assert!(matches!(&bundles[1].row, Write::NotMember { user_id, .. } if user_id == "u2"));
}

#[test]
fn a_put_keeps_current_members_it_lists_and_removes_the_rest() {
    let current = vec!["u1".to_string(), "u2".to_string()];
    let d = delta(true, &[("u1", true), ("u3", true)]);
    let bundles = member_changes("i1", "g1", &d, Some(&current), &users(&["u1", "u3"]), &Displays::new());
    assert_eq!(
        planned(&bundles),
        [("u3".to_string(), true), ("u2".to_string(), false)],
        "u1 stays as it is: no write for it"
    );
}

#[test]
fn a_bundle_reserves_room_for_a_job_a_replan_may_add() {
    let d = delta(false, &[("u1", true)]);
    let mut bundles = member_changes("i1", "g1", &d, None, &users(&["u1"]), &Displays::new());
    assert_eq!(bundles[0].max_len(), 2, "two member rows");
    bundles[0].assignment = Some(UserWrites { writes: Vec::new(), message: None });
    assert_eq!(bundles[0].max_len(), 4, "and the ASSIGN# row with a job, even if none is planned yet");
}
