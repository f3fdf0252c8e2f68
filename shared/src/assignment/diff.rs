//! The one action that takes the app from one assignment to another, and what changed.

use serde::Serialize;

use super::{Action, Assignment};

/// A change worth a job: the action and the names of the fields that changed
/// (`active`, `role`, `attributes.<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    pub changed: Vec<String>,
}

/// `None` when nothing the app cares about changed: no job. An inactive user unknown to the app
/// is not provisioned; an inactive user whose attributes change is updated when reactivated.
pub fn diff(before: Option<&Assignment>, after: Option<&Assignment>) -> Option<Change> {
    let fields = |a: Option<&Assignment>, b: Option<&Assignment>| -> Vec<String> {
        let mut out = Vec::new();
        if a.map(|x| x.active) != b.map(|x| x.active) {
            out.push("active".to_string());
        }
        if a.and_then(|x| x.role.as_ref()) != b.and_then(|x| x.role.as_ref()) {
            out.push("role".to_string());
        }
        if a.map_or(&[][..], |x| &x.roles[..]) != b.map_or(&[][..], |x| &x.roles[..]) {
            out.push("roles".to_string());
        }
        let no_entitlements = Default::default();
        if a.map_or(&no_entitlements, |x| &x.entitlements) != b.map_or(&no_entitlements, |x| &x.entitlements) {
            out.push("entitlements".to_string());
        }
        let empty = Default::default();
        let (aa, ba) = (a.map_or(&empty, |x| &x.attributes), b.map_or(&empty, |x| &x.attributes));
        let mut names: Vec<&String> = aa.keys().chain(ba.keys()).collect();
        names.sort();
        names.dedup();
        out.extend(names.into_iter().filter(|n| aa.get(*n) != ba.get(*n)).map(|n| format!("attributes.{n}")));
        out
    };
    let action = match (before, after) {
        (None, None) => return None,
        (None, Some(a)) if !a.active => return None,
        (None, Some(_)) => Action::Provision,
        (Some(_), None) => Action::Deprovision,
        (Some(b), Some(a)) => match (b.active, a.active) {
            (true, false) => Action::Deactivate,
            (false, true) => Action::Reactivate,
            (false, false) => return None,
            (true, true) if b == a => return None,
            (true, true) => Action::Update,
        },
    };
    Some(Change { action, changed: fields(before, after) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(active: bool, role: Option<&str>, email: &str) -> Assignment {
        Assignment {
            active,
            role: role.map(String::from),
            attributes: [("email".to_string(), json!(email))].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn every_transition() {
        let on = a(true, Some("admin"), "x@y");
        let off = a(false, Some("admin"), "x@y");
        assert_eq!(diff(None, Some(&on)).unwrap().action, Action::Provision);
        assert_eq!(diff(None, Some(&off)), None, "an inactive user is not provisioned");
        assert_eq!(diff(Some(&on), None).unwrap().action, Action::Deprovision);
        assert_eq!(
            diff(Some(&on), Some(&off)).unwrap(),
            Change { action: Action::Deactivate, changed: vec!["active".into()] }
        );
        assert_eq!(diff(Some(&off), Some(&on)).unwrap().action, Action::Reactivate);
        assert_eq!(diff(Some(&on), Some(&on)), None, "equal states make no job");
        assert_eq!(diff(Some(&off), Some(&a(false, Some("viewer"), "x@y"))), None);
        assert_eq!(diff(None, None), None);
    }

    #[test]
    fn update_names_changed_fields() {
        let before = a(true, Some("viewer"), "x@y");
        let after = a(true, Some("admin"), "z@y");
        assert_eq!(
            diff(Some(&before), Some(&after)).unwrap(),
            Change { action: Action::Update, changed: vec!["role".into(), "attributes.email".into()] }
        );
        let no_role = a(true, None, "x@y");
        assert_eq!(diff(Some(&before), Some(&no_role)).unwrap().changed, vec!["role".to_string()]);
    }
}
