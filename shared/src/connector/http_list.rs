//! The http connector's account listing (`list_users`), for resync: one templated GET per
//! page, the accounts and the next page's cursor read by JSON pointers
//! (docs/contract.md "Resync and drift").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Compiler, HttpConnector};
use crate::assignment::drift::{AccountPage, AppAccount};
use crate::connector::{ConnectorError, classify, permanent, send};

/// Most accounts one page may hold: more is taken for a misconfigured `items` pointer (and a
/// page's snapshot must fit one table item).
pub const MAX_PAGE_ACCOUNTS: usize = 1000;

/// `GET {base_url}{path}` with the connector's headers, page after page.
///
/// `path` is a template that sees `cursor` (`none` on the first page, then the value at `next`
/// in the previous answer) and `secret`, e.g. `/api/users?limit=100{% if cursor %}&cursor={{
/// cursor }}{% endif %}`. The accounts are the array at `items`; in each, `id` points to the
/// app's id (required), `key` to what matches a user (an email or user name), `active` to a
/// boolean (or `"true"`/`"false"`), `role` to the role (`null`: none), and `attributes` maps an
/// integration attribute name to where the app keeps it. What is not pointed to is not compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListUsers {
    pub path: String,
    #[serde(default)]
    pub items: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// The template name of the listing's path.
pub(super) const PATH_TEMPLATE: &str = "list_users.path";

/// Checks the pointers and compiles the path template when the connector is built.
pub(super) fn compile(compiler: &mut Compiler, list: &ListUsers) -> Result<(), ConnectorError> {
    let pointers = [("items", Some(&list.items)), ("next", list.next.as_ref()), ("id", Some(&list.id))]
        .into_iter()
        .chain([("key", list.key.as_ref()), ("active", list.active.as_ref()), ("role", list.role.as_ref())])
        .chain(list.attributes.values().map(|p| ("attributes", Some(p))));
    for (field, pointer) in pointers {
        if let Some(p) = pointer
            && !(p.is_empty() || p.starts_with('/'))
        {
            return Err(permanent(format!("connector.list_users.{field}: '{p}' is not a JSON pointer (like '/id')")));
        }
    }
    compiler.add(PATH_TEMPLATE.to_string(), list.path.clone(), "connector.list_users.path")?;
    Ok(())
}

impl HttpConnector {
    pub(super) async fn read_accounts(
        &self,
        list: &ListUsers,
        cursor: Option<&str>,
    ) -> Result<AccountPage, ConnectorError> {
        let ctx = minijinja::Value::from_serialize(json!({ "cursor": cursor, "secret": self.secret.as_deref() }));
        let path = self.render(PATH_TEMPLATE, &ctx, || "'list_users' path template".to_string())?;
        let sep = if path.starts_with('/') || path.starts_with('?') { "" } else { "/" };
        let url = format!("{}{sep}{path}", self.base);
        let builder = self.http.request(reqwest::Method::GET, &url)?.headers(self.headers(&ctx)?);
        let (_, text) = classify(send(builder).await?).await?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|_| permanent("list_users: the app's answer is not JSON".to_string()))?;
        let page = accounts_from(&answer, list)?;
        if page.next.is_some() && page.next.as_deref() == cursor {
            return Err(permanent("list_users.next: the app gave the same cursor again".to_string()));
        }
        Ok(page)
    }
}

/// The accounts of one answer, as `list` says where they are. Pure: unit-tested.
pub fn accounts_from(answer: &Value, list: &ListUsers) -> Result<AccountPage, ConnectorError> {
    let items = answer
        .pointer(&list.items)
        .and_then(Value::as_array)
        .ok_or_else(|| permanent(format!("list_users.items: no array at '{}' in the app's answer", list.items)))?;
    if items.len() > MAX_PAGE_ACCOUNTS {
        return Err(permanent(format!(
            "list_users: a page of {} accounts, more than {MAX_PAGE_ACCOUNTS}",
            items.len()
        )));
    }
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut accounts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = text(item.pointer(&list.id))
            .ok_or_else(|| permanent(format!("list_users.id: account {i} has no id at '{}'", list.id)))?;
        let active = list.active.as_deref().and_then(|p| match item.pointer(p) {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => s.trim().parse::<bool>().ok(),
            _ => None,
        });
        let role = list.role.as_deref().map(|p| text(item.pointer(p)));
        let attributes =
            list.attributes.iter().filter_map(|(name, p)| item.pointer(p).map(|v| (name.clone(), v.clone()))).collect();
        accounts.push(AppAccount {
            id,
            key: list.key.as_deref().and_then(|p| text(item.pointer(p))),
            active,
            role,
            attributes,
        });
    }
    let next = list.next.as_deref().and_then(|p| text(answer.pointer(p)));
    Ok(AccountPage { accounts, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> ListUsers {
        serde_json::from_value(json!({
            "path": "/api/users?limit=2{% if cursor %}&cursor={{ cursor }}{% endif %}",
            "items": "/users", "next": "/next_cursor", "id": "/id", "key": "/email",
            "active": "/active", "role": "/role", "attributes": { "email": "/email" }
        }))
        .unwrap()
    }

    #[test]
    fn accounts_are_read_where_the_pointers_say() {
        let answer = json!({"users": [
            {"id": "u1", "email": "ada@example.com", "active": true, "role": "admin"},
            {"id": 7, "email": "bob@example.com", "active": "false", "role": null}
        ], "next_cursor": "7"});
        let page = accounts_from(&answer, &list()).unwrap();
        assert_eq!(page.next.as_deref(), Some("7"));
        let a = &page.accounts[0];
        assert_eq!((a.id.as_str(), a.key.as_deref(), a.active), ("u1", Some("ada@example.com"), Some(true)));
        assert_eq!(a.role, Some(Some("admin".to_string())));
        assert_eq!(a.attributes["email"], "ada@example.com");
        let b = &page.accounts[1];
        assert_eq!((b.id.as_str(), b.active, b.role.clone()), ("7", Some(false), Some(None)));
        let last = accounts_from(&json!({"users": [], "next_cursor": null}), &list()).unwrap();
        assert_eq!(last, AccountPage::default());
    }

    #[test]
    fn unread_fields_stay_unknown_and_bad_answers_are_clear_errors() {
        let mut bare = list();
        bare.role = None;
        bare.active = None;
        let page = accounts_from(&json!({"users": [{"id": "u1"}]}), &bare).unwrap();
        assert_eq!((page.accounts[0].active, page.accounts[0].role.clone()), (None, None));
        let err = accounts_from(&json!({"data": []}), &list()).unwrap_err();
        assert!(err.to_string().contains("list_users.items: no array at '/users'"), "{err}");
        let err = accounts_from(&json!({"users": [{"email": "x"}]}), &list()).unwrap_err();
        assert!(err.to_string().contains("account 0 has no id at '/id'"), "{err}");
    }
}
