//! `GET /Users` and `GET /Groups`: filter, sort, paginate (RFC 7644 §3.4.2).
//! `id`, `userName`/`displayName` and `externalId` equality use key lookups; any other filter
//! pages through the integration's partition, keeping only the requested window in memory.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

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
/// The largest `startIndex + count - 1` a sorted listing serves (docs/contract.md "Limits"):
/// it keeps that many sort keys (never resources) while it reads the partition.
pub const MAX_SORTED_WINDOW: usize = 50_000;
/// Sort keys are compared on their first 256 bytes, then by id.
const SORT_KEY_BYTES: usize = 256;

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
pub(crate) fn parse_window(p: &ListParams) -> ScimResult<(usize, usize)> {
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

/// A sort key: the attribute's folded value (missing values sort last in either order), cut
/// to [`SORT_KEY_BYTES`], then the id.
#[derive(Debug, PartialEq, Eq)]
struct Ranked {
    key: Option<String>,
    descending: bool,
    id: String,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_key = match (&self.key, &other.key) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) if self.descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
        };
        by_key.then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a listing keeps while it reads the partition: the matches counted, and
/// - unsorted: the page's resources only;
/// - sorted: the best `start - 1 + count` sort keys and ids in a bounded heap (no resources;
///   the page's resources are read again by id at the end), and nothing at all when that
///   window is larger than [`MAX_SORTED_WINDOW`] (the answer is then an empty page, or 400
///   `tooMany` when there are that many matches).
struct Window {
    start: usize,
    count: usize,
    total: usize,
    sort: Option<(String, bool)>,
    page: Vec<Stored>,
    ranked: BinaryHeap<Ranked>,
}

impl Window {
    fn new(start: usize, count: usize, sort: Option<(String, bool)>) -> Window {
        Window { start, count, total: 0, sort, page: Vec::new(), ranked: BinaryHeap::new() }
    }

    /// How many sort keys a sorted listing keeps (0 past the cap).
    fn capacity(&self) -> usize {
        let window = self.start.saturating_sub(1).saturating_add(self.count);
        if window > MAX_SORTED_WINDOW { 0 } else { window }
    }

    fn offer(&mut self, r: Stored, rendered: &Value, schema: &ResourceType) {
        self.total += 1;
        let Some((path, descending)) = &self.sort else {
            if self.total >= self.start && self.page.len() < self.count {
                self.page.push(r);
            }
            return;
        };
        let capacity = self.capacity();
        if capacity == 0 {
            return;
        }
        let key = sort_value(rendered, path, schema).map(|mut k| {
            if k.len() > SORT_KEY_BYTES {
                let mut end = SORT_KEY_BYTES;
                while !k.is_char_boundary(end) {
                    end -= 1;
                }
                k.truncate(end);
            }
            k
        });
        let entry = Ranked { key, descending: *descending, id: r.id };
        if self.ranked.len() < capacity {
            self.ranked.push(entry);
        } else if self.ranked.peek().is_some_and(|worst| entry < *worst) {
            self.ranked.pop();
            self.ranked.push(entry);
        }
    }

    /// The page: its resources (unsorted), or the ids to read, in order (sorted).
    fn finish(self) -> ScimResult<(usize, Page)> {
        if self.sort.is_none() {
            return Ok((self.total, Page::Resources(self.page)));
        }
        if self.capacity() == 0 && self.total >= self.start && self.count > 0 {
            return Err(ScimError::bad_request(
                crate::error::ScimType::TooMany,
                format!(
                    "with sortBy, startIndex + count may reach {MAX_SORTED_WINDOW} at most; narrow the filter or \
                     list without sortBy"
                ),
            ));
        }
        let ids = self.ranked.into_sorted_vec().into_iter().skip(self.start - 1).map(|r| r.id).collect();
        Ok((self.total, Page::Ids(ids)))
    }
}

enum Page {
    Resources(Vec<Stored>),
    Ids(Vec<String>),
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

pub(crate) fn list_response(total: usize, start: usize, resources: Vec<Value>) -> Reply {
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

/// What a listing checks before it reads anything: the window, the filter, the sort.
pub fn check(params: &ListParams, kind: Kind) -> ScimResult<()> {
    parse_window(params)?;
    parsed_filter(params, kind)?;
    parsed_sort(params)?;
    Ok(())
}

fn parsed_filter(params: &ListParams, kind: Kind) -> ScimResult<Option<Filter>> {
    match params.filter.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(f) => {
            let f = filter::parse(f)?;
            filter::validate(&f, resource_type(kind))?;
            Ok(Some(f))
        }
    }
}

fn parsed_sort(params: &ListParams) -> ScimResult<Option<(String, bool)>> {
    let Some(path) = params.sort_by.as_deref().map(str::trim).filter(|p| !p.is_empty()) else { return Ok(None) };
    let descending = match params.sort_order.as_deref().map(str::trim) {
        None | Some("") => false,
        Some(o) if o.eq_ignore_ascii_case("ascending") => false,
        Some(o) if o.eq_ignore_ascii_case("descending") => true,
        Some(_) => return Err(ScimError::invalid_value("sortOrder must be 'ascending' or 'descending'")),
    };
    Ok(Some((path.to_string(), descending)))
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
    let parsed = parsed_filter(params, kind)?;
    let sort = parsed_sort(params)?;
    let mut window = Window::new(start, count, sort);
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

    let (total, page) = window.finish()?;
    let page = match page {
        Page::Resources(page) => page,
        Page::Ids(ids) => {
            let mut found: HashMap<String, Stored> = ctx
                .store
                .get_resources(ctx.integration_id, kind, &ids)
                .await?
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
            // A resource deleted since it was ranked is left out of the page.
            ids.iter().filter_map(|id| found.remove(id)).collect()
        }
    };
    let mut resources = Vec::with_capacity(page.len());
    // Members a /Groups page may still carry: a page ends early rather than pass it.
    let mut member_budget = super::groups::MEMBERS_PER_RESPONSE;
    for r in &page {
        let body = match kind {
            Kind::User => super::users::reply(ctx, 200, r, &params.projection).body,
            Kind::Group => {
                let first = resources.is_empty();
                match super::groups::list_item(ctx, r, &params.projection, member_budget, first).await? {
                    Some((body, used)) => {
                        member_budget = member_budget.saturating_sub(used);
                        Some(body)
                    }
                    None => break,
                }
            }
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

    fn stored(id: usize, name: &str) -> (Stored, Value) {
        let doc = json!({"userName": name});
        let r = Stored {
            id: format!("{id:026}"),
            doc: doc.as_object().unwrap().clone(),
            version: 1,
            created: String::new(),
            last_modified: String::new(),
        };
        (r, doc)
    }

    fn run(window: &mut Window, n: usize) {
        for i in 0..n {
            // Names in a scrambled order: i * 7919 mod n.
            let (r, v) = stored(i, &format!("user{:06}", (i * 7919) % n));
            window.offer(r, &v, &USER_TYPE);
            assert!(window.ranked.len() <= window.capacity(), "the heap never grows past the window");
            assert!(window.page.is_empty(), "a sorted listing keeps no resources");
        }
    }

    #[test]
    fn a_sorted_window_keeps_only_keys_and_finds_the_right_page() {
        let mut w = Window::new(9_990, 20, Some(("userName".into(), false)));
        run(&mut w, 10_000);
        let (total, Page::Ids(ids)) = w.finish().unwrap() else { panic!("sorted") };
        assert_eq!(total, 10_000);
        assert_eq!(ids.len(), 11, "ranks 9,990..10,000");
        // The 9,990th name in order is user009989; its id is the i with i*7919 % n == 9989.
        let id_of = |name: usize| (0..10_000).find(|i| (i * 7919) % 10_000 == name).unwrap();
        assert_eq!(ids[0], format!("{:026}", id_of(9_989)));
        assert_eq!(ids[10], format!("{:026}", id_of(9_999)));

        let mut w = Window::new(1, 3, Some(("userName".into(), true)));
        run(&mut w, 100);
        let (_, Page::Ids(ids)) = w.finish().unwrap() else { panic!() };
        assert_eq!(ids, [99, 98, 97].map(|n| format!("{:026}", (0..100).find(|i| (i * 7919) % 100 == n).unwrap())));
    }

    #[test]
    fn a_window_past_the_cap_keeps_nothing_and_answers_empty_or_too_many() {
        let mut w = Window::new(2_000_000_000, 100, Some(("userName".into(), false)));
        run(&mut w, 1_000);
        assert_eq!(w.ranked.len(), 0);
        let (total, Page::Ids(ids)) = w.finish().unwrap() else { panic!() };
        assert_eq!((total, ids.len()), (1_000, 0));

        let mut w = Window::new(MAX_SORTED_WINDOW, 100, Some(("userName".into(), false)));
        w.total = MAX_SORTED_WINDOW; // as if that many had matched
        let err = w.finish().err().unwrap();
        assert_eq!((err.status, err.scim_type.map(|t| t.as_str())), (400, Some("tooMany")));

        let mut w = Window::new(2_000_000_000, 100, None);
        run(&mut w, 1_000);
        let (total, Page::Resources(page)) = w.finish().unwrap() else { panic!() };
        assert_eq!((total, page.len()), (1_000, 0));
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
