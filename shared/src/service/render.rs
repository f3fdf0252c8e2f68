//! Stored resource -> SCIM JSON (`schemas`, `id`, attributes, `meta`).

use serde_json::{Map, Value, json};

use super::etag;
use crate::scim::resource::schemas_for;
use crate::scim::schema::{GROUP_TYPE, USER_TYPE};
use crate::store::members::Member;
use crate::store::resources::{Kind, Stored};

pub fn location(base_url: &str, kind: Kind, id: &str) -> String {
    match kind {
        Kind::User => format!("{base_url}/Users/{id}"),
        Kind::Group => format!("{base_url}/Groups/{id}"),
    }
}

/// The full resource; `members` are group member ids when they were loaded.
pub fn resource(base_url: &str, kind: Kind, r: &Stored, members: Option<&[Member]>) -> Value {
    let rt = match kind {
        Kind::User => &USER_TYPE,
        Kind::Group => &GROUP_TYPE,
    };
    let mut out = Map::new();
    out.insert("schemas".into(), json!(schemas_for(rt, &r.doc)));
    out.insert("id".into(), json!(r.id));
    for (k, v) in &r.doc {
        out.insert(k.clone(), v.clone());
    }
    if let Some(members) = members {
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                let mut v = json!({ "value": m.id, "$ref": location(base_url, Kind::User, &m.id), "type": "User" });
                if let Some(d) = &m.display {
                    v["display"] = json!(d);
                }
                v
            })
            .collect();
        out.insert("members".into(), Value::Array(list));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": r.created,
            "lastModified": r.last_modified,
            "location": location(base_url, kind, &r.id),
            "version": etag(r.version),
        }),
    );
    Value::Object(out)
}
