//! The http connector's role listing (`list_roles`): one GET, the roles read by JSON pointers.

use serde_json::{Value, json};

use super::{HttpConnector, ListRoles};
use crate::connector::{AppRole, ConnectorError, classify, permanent, send};

/// Most roles one listing may give: a catalog is a short list, and an answer of more is taken
/// for a misconfigured `items` pointer.
pub const MAX_ROLES: usize = 1000;

impl HttpConnector {
    pub(super) async fn read_roles(&self, list: &ListRoles) -> Result<Vec<AppRole>, ConnectorError> {
        let ctx = minijinja::Value::from_serialize(json!({ "secret": self.secret.as_deref() }));
        let sep = if list.path.starts_with('/') { "" } else { "/" };
        let url = format!("{}{sep}{}", self.base, list.path);
        let builder = self.http.request(reqwest::Method::GET, &url)?.headers(self.headers(&ctx)?);
        let (_, text) = classify(send(builder).await?).await?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|_| permanent("list_roles: the app's answer is not JSON".to_string()))?;
        roles_from(&answer, list)
    }
}

/// The roles in an answer, as `list` says where they are. Pure: unit-tested.
pub fn roles_from(answer: &Value, list: &ListRoles) -> Result<Vec<AppRole>, ConnectorError> {
    let items = answer
        .pointer(&list.items)
        .and_then(Value::as_array)
        .ok_or_else(|| permanent(format!("list_roles.items: no array at '{}' in the app's answer", list.items)))?;
    if items.len() > MAX_ROLES {
        return Err(permanent(format!("list_roles: the app listed {} roles, more than {MAX_ROLES}", items.len())));
    }
    let text = |item: &Value, pointer: &str| match item.pointer(pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let value = text(item, &list.value)
                .ok_or_else(|| permanent(format!("list_roles.value: role {i} has no text at '{}'", list.value)))?;
            Ok(AppRole {
                value,
                display: list.display.as_deref().and_then(|p| text(item, p)),
                description: list.description.as_deref().and_then(|p| text(item, p)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &str, value: &str) -> ListRoles {
        ListRoles {
            path: "/api/roles".into(),
            items: items.into(),
            value: value.into(),
            display: Some("/label".into()),
            description: None,
        }
    }

    #[test]
    fn roles_are_read_where_the_pointers_say() {
        let answer = json!({"roles": [{"name": "admin", "label": "Admin"}, {"name": "viewer"}]});
        let roles = roles_from(&answer, &list("/roles", "/name")).unwrap();
        assert_eq!(roles[0], AppRole { value: "admin".into(), display: Some("Admin".into()), description: None });
        assert_eq!((roles[1].value.as_str(), roles[1].display.as_deref()), ("viewer", None));
        let plain = roles_from(&json!(["a", "b"]), &list("", "")).unwrap();
        assert_eq!(plain.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_wrong_pointer_is_a_clear_error() {
        let err = roles_from(&json!({"roles": []}), &list("/data", "/name")).unwrap_err();
        assert!(err.to_string().contains("list_roles.items: no array at '/data'"), "{err}");
        let err = roles_from(&json!({"roles": [{"id": 1}, {}]}), &list("/roles", "/name")).unwrap_err();
        assert!(err.to_string().contains("role 0 has no text at '/name'"), "{err}");
        let many = json!({"roles": vec![json!({"name": "r"}); MAX_ROLES + 1]});
        assert!(roles_from(&many, &list("/roles", "/name")).is_err());
    }
}
