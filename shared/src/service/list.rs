//! `GET /Users` and `GET /Groups`: filter, sort, paginate (RFC 7644 §3.4.2).
//! `id`, `userName`/`displayName` and `externalId` equality use key lookups; any other filter
//! pages through the integration's partition, keeping only the requested window in memory.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::{Ctx, Reply, render};
use crate::error::{ScimError, ScimResult};
use crate::scim::filter::{self, AttrSchema, CompareOp, Filter};
use crate::scim::resource::Projection;
use crate::scim::schema::{GROUP_TYPE, LIST_RESPONSE, ResourceType, USER_TYPE};
use crate::store::resources::{Kind, Stored};

/// Largest page we return (advertised as `filter.maxResults`).
pub const MAX_RESULTS: usize = 200;
/// Items read per DynamoDB page while scanning an integration's partition.
const SCAN_PAGE: i32 = 500;

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub projection: Projection,
}

pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

impl ListParams {
    /// The parameters of a `POST .../.search` body (RFC 7644 §3.4.3).
    pub fn from_search_request(body: &Value) -> ScimResult<Self> {
        let Some(obj) = body.as_object() else {
            return Err(ScimError::invalid_syntax("a SearchRequest must be a JSON object"));
        };
        let field = |name: &str| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let text = |name: &str| -> ScimResult<Option<String>> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(ScimError::invalid_value(format!("'{name}' must be a string or number"))),
            }
        };
        let list = |name: &str| -> ScimResult<Option<String>> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be a list of attribute names"))),
                Some(_) => Err(ScimError::invalid_value(format!("'{name}' must be a list of attribute names"))),
            }
        };
        let attributes = list("attributes")?;
        let excluded = list("excludedAttributes")?;
        Ok(ListParams {
            filter: text("filter")?,
            start_index: text("startIndex")?,
            count: text("count")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            projection: Projection::new(attributes.as_deref(), excluded.as_deref()),
        })
    }
}

fn resource_type(kind: Kind) -> &'static ResourceType {
    match kind {
        Kind::User => &USER_TYPE,
        Kind::Group => &GROUP_TYPE,
    }
}

/// RFC 7644 §3.4.2.4: startIndex < 1 is 1; count < 0 is 0; both must be integers.
fn parse_window(p: &ListParams) -> ScimResult<(usize, usize)> {
    let int = |name: &str, v: &Option<String>| -> ScimResult<Option<i64>> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => {
                s.parse::<i64>().map(Some).map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
            }
        }
    };
    let start = int("startIndex", &p.start_index)?.unwrap_or(1).max(1) as usize;
    let count = int("count", &p.count)?.map(|c| c.max(0) as usize).unwrap_or(100).min(MAX_RESULTS);
    Ok((start, count))
}

/// An `eq` on a key-indexed attribute anywhere in a top-level `and` chain.
fn key_lookup(f: &Filter, kind: Kind) -> Option<(String, String)> {
    match f {
        Filter::Compare { path, op: CompareOp::Eq, value: Value::String(v) } if path.sub.is_none() => {
            let uri_ok = path.uri.as_deref().is_none_or(|u| resource_type(kind).is_core_urn(u));
            let attr = path.attr.as_str();
            let indexed = attr.eq_ignore_ascii_case("id")
                || attr.eq_ignore_ascii_case("externalId")
                || attr.eq_ignore_ascii_case(kind.unique_attr());
            (uri_ok && indexed).then(|| (attr.to_ascii_lowercase(), v.clone()))
        }
        Filter::And(a, b) => key_lookup(a, kind).or_else(|| key_lookup(b, kind)),
        _ => None,
    }
}

/// Value used to sort by `path` (`userName`, `name.familyName`, `meta.created`, `emails`).
fn sort_value(resource: &Value, path: &str, schema: &ResourceType) -> Option<String> {
    let (uri, rest) = filter::split_urn(path);
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let get = |v: &Value, k: &str| -> Option<Value> {
        v.as_object()?.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone())
    };
    let scope = match uri {
        Some(u) if !schema.is_core_urn(u) => get(resource, u)?,
        _ => resource.clone(),
    };
    let mut v = get(&scope, attr)?;
    if let Value::Array(items) = &v {
        // Multi-valued: the primary value, else the first (RFC 7644 §3.4.2.3).
        let pick = items.iter().find(|i| get(i, "primary") == Some(Value::Bool(true))).or(items.first())?;
        v = pick.clone();
        if sub.is_none() {
            v = get(&v, "value").unwrap_or(v);
        }
    }
    if let Some(s) = sub {
        v = get(&v, s)?;
    }
    let text = match v {
        Value::String(s) => s,
        Value::Null => return None,
        other => other.to_string(),
    };
    Some(crate::scim::text::fold(&text, schema.case_exact(uri, attr, sub)).into_owned())
}

struct Window {
    start: usize,
    count: usize,
    total: usize,
    sort: Option<(String, bool)>,
    /// Matches kept: only the window (unsorted) or the best `start - 1 + count` (sorted).
    kept: Vec<(Option<String>, Stored)>,
}

impl Window {
    fn offer(&mut self, r: Stored, rendered: &Value, schema: &ResourceType) {
        self.total += 1;
        match &self.sort {
            None => {
                if self.total >= self.start && self.kept.len() < self.count {
                    self.kept.push((None, r));
                }
            }
            Some((path, descending)) => {
                let key = sort_value(rendered, path, schema);
                let cap = self.start - 1 + self.count;
                if cap == 0 {
                    return;
                }
                let cmp = |a: &Option<String>, b: &Option<String>| -> Ordering {
                    // Missing values sort last in either order.
                    match (a, b) {
                        (None, None) => Ordering::Equal,
                        (None, Some(_)) => Ordering::Greater,
                        (Some(_), None) => Ordering::Less,
                        (Some(x), Some(y)) => {
                            if *descending {
                                y.cmp(x)
                            } else {
                                x.cmp(y)
                            }
                        }
                    }
                };
                let pos = self.kept.partition_point(|(k, _)| cmp(k, &key) != Ordering::Greater);
                if pos < cap {
                    self.kept.insert(pos, (key, r));
                    self.kept.truncate(cap);
                }
            }
        }
    }

    fn page(self) -> Vec<Stored> {
        let skip = if self.sort.is_some() { self.start - 1 } else { 0 };
        self.kept.into_iter().skip(skip).map(|(_, r)| r).collect()
    }
}

/// `GET /Users`, `GET /Groups`, and `POST /Users/.search`, `POST /Groups/.search`.
pub async fn list(ctx: Ctx<'_>, kind: Kind, params: &ListParams) -> ScimResult<Reply> {
    let (start, count) = parse_window(params)?;
    let (total, resources) = query(ctx, kind, params, start, count).await?;
    Ok(list_response(total, start, resources))
}

/// `POST /.search` (RFC 7644 §3.4.3): Users then Groups, as one list. With `sortBy`, each
/// type is sorted on its own.
pub async fn search_all(ctx: Ctx<'_>, params: &ListParams) -> ScimResult<Reply> {
    let (start, count) = parse_window(params)?;
    let (users, mut resources) = query(ctx, Kind::User, params, start, count).await?;
    let group_start = start.saturating_sub(users).max(1);
    let (groups, more) = query(ctx, Kind::Group, params, group_start, count - resources.len()).await?;
    resources.extend(more);
    Ok(list_response(users + groups, start, resources))
}

fn list_response(total: usize, start: usize, resources: Vec<Value>) -> Reply {
    Reply::json(
        200,
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

/// One kind's matches: how many there are, and the window `[start, start + count)` rendered.
async fn query(
    ctx: Ctx<'_>,
    kind: Kind,
    params: &ListParams,
    start: usize,
    count: usize,
) -> ScimResult<(usize, Vec<Value>)> {
    let schema = resource_type(kind);
    let parsed = match params.filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(f) => {
            let f = filter::parse(f)?;
            filter::validate(&f, schema)?;
            Some(f)
        }
    };
    let sort = match params.sort_by.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => {
            let descending = match params.sort_order.as_deref().map(str::trim) {
                None | Some("") => false,
                Some(o) if o.eq_ignore_ascii_case("ascending") => false,
                Some(o) if o.eq_ignore_ascii_case("descending") => true,
                Some(_) => {
                    return Err(ScimError::invalid_value("sortOrder must be 'ascending' or 'descending'"));
                }
            };
            Some((p.to_string(), descending))
        }
    };
    let mut window = Window { start, count, total: 0, sort, kept: Vec::new() };
    let render_bare = |r: &Stored| render::resource(ctx.base_url, kind, r, None);
    let matches = |f: &Option<Filter>, v: &Value| f.as_ref().is_none_or(|f| filter::matches(f, v, schema));

    if let Some((attr, value)) = parsed.as_ref().and_then(|f| key_lookup(f, kind)) {
        let found = if attr == "id" {
            ctx.store.get_resource(ctx.integration_id, kind, &value).await?
        } else {
            ctx.store.find_unique(ctx.integration_id, kind, &attr, &value).await?
        };
        if let Some(r) = found {
            let v = render_bare(&r);
            if matches(&parsed, &v) {
                window.offer(r, &v, schema);
            }
        }
    } else {
        let mut next = None;
        loop {
            let (rows, more) = ctx.store.list_page(ctx.integration_id, kind, next, SCAN_PAGE).await?;
            for r in rows {
                let v = render_bare(&r);
                if matches(&parsed, &v) {
                    window.offer(r, &v, schema);
                }
            }
            match more {
                Some(k) => next = Some(k),
                None => break,
            }
        }
    }

    let total = window.total;
    let page = window.page();
    let mut resources = Vec::with_capacity(page.len());
    for r in &page {
        let body = match kind {
            Kind::User => super::users::reply(ctx, 200, r, &params.projection).body,
            Kind::Group => super::groups::reply(ctx, 200, r, &params.projection).await?.body,
        };
        resources.extend(body);
    }
    Ok((total, resources))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parsing_follows_rfc() {
        let p = |s: Option<&str>, c: Option<&str>| ListParams {
            start_index: s.map(String::from),
            count: c.map(String::from),
            ..Default::default()
        };
        assert_eq!(parse_window(&p(None, None)).unwrap(), (1, 100));
        assert_eq!(parse_window(&p(Some("0"), Some("-5"))).unwrap(), (1, 0));
        assert_eq!(parse_window(&p(Some("3"), Some("100000"))).unwrap(), (3, MAX_RESULTS));
        assert_eq!(parse_window(&p(Some("x"), None)).unwrap_err().status, 400);
    }

    #[test]
    fn key_lookups_are_found_in_and_chains_only() {
        let f = filter::parse(r#"userName eq "a" and active eq true"#).unwrap();
        assert_eq!(key_lookup(&f, Kind::User), Some(("username".into(), "a".into())));
        let f = filter::parse(r#"externalId eq "x""#).unwrap();
        assert_eq!(key_lookup(&f, Kind::User), Some(("externalid".into(), "x".into())));
        let f = filter::parse(r#"userName eq "a" or userName eq "b""#).unwrap();
        assert_eq!(key_lookup(&f, Kind::User), None);
        let f = filter::parse(r#"displayName eq "G""#).unwrap();
        assert_eq!(key_lookup(&f, Kind::Group), Some(("displayname".into(), "G".into())));
        assert_eq!(key_lookup(&f, Kind::User), None, "displayName is not unique for users");
    }

    #[test]
    fn sort_values() {
        let v = json!({"userName": "Bob", "emails": [{"value": "b@x"}, {"value": "a@x", "primary": true}],
                       "name": {"familyName": "Z"}, "meta": {"created": "2020"}});
        assert_eq!(sort_value(&v, "userName", &USER_TYPE).as_deref(), Some("bob"));
        assert_eq!(sort_value(&v, "emails", &USER_TYPE).as_deref(), Some("a@x"));
        assert_eq!(sort_value(&v, "name.familyName", &USER_TYPE).as_deref(), Some("z"));
        assert_eq!(sort_value(&v, "title", &USER_TYPE), None);
    }
}
