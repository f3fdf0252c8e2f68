//! The bodies of the fuzz targets (docs/testing.md "Fuzzing"). `fuzz/fuzz_targets/*.rs` hand
//! libFuzzer's inputs to these functions (`make fuzz`); the unit tests below replay the
//! committed corpus and regression inputs, then mutate them for a few seconds (`make test`).
//!
//! Each function panics on a bug: a panic of the code under test, a 5xx answer to client
//! input, or a broken property:
//! - `filter`: a filter that parses prints as text that parses to the same tree (when that
//!   text is within the length limit), and evaluates against a user and a group without
//!   panicking;
//! - `patch`: a PATCH applied to a user or a group yields a document that normalises, or a 4xx;
//! - `resource`: normalising is idempotent, and its errors are 4xx;
//! - `request`: a request body, as the handler behind a route checks it before any AWS call
//!   (user and group bodies with the size limits, PATCH bodies, SearchRequests with their
//!   filters and sorting, integration configurations), answers or fails with a 4xx.

use serde_json::{Map, Value, json};

use crate::error::ScimResult;
use crate::scim::schema::{GROUP_TYPE, ResourceType, USER_TYPE};
use crate::scim::{filter, patch, resource};
use crate::store::resources::Kind;

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub type Target = fn(&[u8]);

pub const TARGETS: [(&str, Target); 4] =
    [("filter", filter), ("patch", patch), ("resource", resource), ("request", request)];

fn client_error<T>(what: &str, input: &impl std::fmt::Debug, result: &ScimResult<T>) {
    if let Err(e) = result {
        assert!((400..500).contains(&e.status), "{what} of {input:?} answered {}: {}", e.status, e.detail);
    }
}

fn sample_user() -> Map<String, Value> {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "Ada.Lovelace@example.com",
        "externalId": "00u1",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "displayName": "Ada Lovelace",
        "title": "Engineer",
        "active": true,
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true},
                   {"value": "ada@home.example", "type": "home"}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "roles": [{"value": "admin", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
            {"department": "R&D", "employeeNumber": "42", "manager": {"value": "m-1"}},
    });
    resource::normalise(&USER_TYPE, user).expect("the sample user normalises")
}

fn sample_group() -> Map<String, Value> {
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "App Admins"});
    resource::normalise(&GROUP_TYPE, group).expect("the sample group normalises")
}

/// `filter=` and PATCH `path` text.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = filter::parse(text);
    client_error("filter", &text, &parsed);
    if let Ok(f) = parsed {
        let shown = f.to_string();
        // Printing escapes control characters (`\u0000`), so the text of a filter near the
        // length limit may print past it (found by fuzzing): the round trip holds below it.
        let fits = shown.chars().count() <= filter::MAX_FILTER_LEN;
        match filter::parse(&shown) {
            Err(_) if !fits => {}
            Ok(again) => assert_eq!(again, f, "{text:?} prints as {shown:?}, which parses to another tree"),
            Err(e) => panic!("{text:?} prints as {shown:?}, which does not parse: {}", e.detail),
        }
        for (schema, doc) in [(&USER_TYPE, sample_user()), (&GROUP_TYPE, sample_group())] {
            client_error("filter validation", &text, &filter::validate(&f, schema));
            filter::matches(&f, &Value::Object(doc), schema);
        }
    }
    client_error("patch path", &text, &filter::parse_patch_path(text));
}

fn json_of(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

/// A PATCH body applied to a user and to a group.
pub fn patch(data: &[u8]) {
    let Some(body) = json_of(data) else { return };
    let ops = patch::parse_request(body.clone());
    client_error("PATCH parsing", &body, &ops);
    let Ok(ops) = ops else { return };
    for (rt, doc) in [(&USER_TYPE, sample_user()), (&GROUP_TYPE, sample_group())] {
        let mut doc = doc;
        let applied = patch::apply(&mut doc, rt, &ops);
        client_error("PATCH", &body, &applied);
        if applied.is_ok() {
            client_error("normalising a patched document", &body, &resource::normalise(rt, Value::Object(doc)));
        }
    }
    client_error("splitting group operations", &body, &patch::split_group_ops(ops));
}

fn normalise_twice(rt: &ResourceType, body: Value) {
    let once = resource::normalise(rt, body.clone());
    client_error("normalising", &body, &once);
    if let Ok(doc) = once {
        client_error("required attributes", &body, &resource::check_required(rt, &doc));
        match resource::normalise(rt, Value::Object(doc.clone())) {
            Ok(again) => assert_eq!(again, doc, "normalising {body} twice changes it"),
            Err(e) => panic!("{body} normalises to a document that does not normalise: {}", e.detail),
        }
    }
}

/// A resource body, as a user and as a group.
pub fn resource(data: &[u8]) {
    let Some(body) = json_of(data) else { return };
    normalise_twice(&USER_TYPE, body.clone());
    let mut group = body.clone();
    client_error("group members", &body, &resource::take_members(&mut group));
    normalise_twice(&GROUP_TYPE, group);
}

/// A request body through the checks of the route its first byte picks.
pub fn request(data: &[u8]) {
    let Some((&route, rest)) = data.split_first() else { return };
    let Some(body) = json_of(rest) else { return };
    let result: ScimResult<()> = match route % 5 {
        0 => resource::normalise(&USER_TYPE, body.clone()).and_then(|doc| {
            resource::check_required(&USER_TYPE, &doc)?;
            crate::service::check_limits(Kind::User, &doc)
        }),
        1 => (|| {
            let mut group = body.clone();
            resource::take_members(&mut group)?;
            let doc = resource::normalise(&GROUP_TYPE, group)?;
            resource::check_required(&GROUP_TYPE, &doc)?;
            crate::service::check_limits(Kind::Group, &doc)
        })(),
        2 => patch::parse_request(body.clone()).and_then(|ops| {
            let mut doc = sample_user();
            patch::apply(&mut doc, &USER_TYPE, &ops)?;
            let doc = resource::normalise(&USER_TYPE, Value::Object(doc))?;
            crate::service::check_limits(Kind::User, &doc)
        }),
        3 => crate::service::list::ListParams::from_search_request(&body)
            .and_then(|params| crate::service::list::check(&params, Kind::User)),
        _ => crate::service::admin::validate_config(body.clone()).map(|_| ()),
    };
    client_error("request", &body, &result);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use rand::{Rng, SeedableRng};

    use super::*;

    fn inputs(target: &str) -> Vec<Vec<u8>> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut out = Vec::new();
        for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                out.push(std::fs::read(entry.path()).unwrap());
            }
        }
        out
    }

    /// Byte-level mutations of corpus inputs: flips, inserts, deletes, splices.
    fn mutate(rng: &mut impl Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut data = corpus[rng.gen_range(0..corpus.len())].clone();
        for _ in 0..rng.gen_range(1..6) {
            let at = if data.is_empty() { 0 } else { rng.gen_range(0..data.len()) };
            match rng.gen_range(0..5) {
                0 if !data.is_empty() => data[at] ^= 1 << rng.gen_range(0..8),
                1 => {
                    const BYTES: &[u8] = b"\"{}[]:,.\\ \xc3\xa9\xe2\x82\xac0aZ";
                    data.insert(at, BYTES[rng.gen_range(0..BYTES.len())]);
                }
                2 if !data.is_empty() => {
                    data.remove(at);
                }
                3 => {
                    let other = &corpus[rng.gen_range(0..corpus.len())];
                    if !other.is_empty() {
                        let from = rng.gen_range(0..other.len());
                        let len = rng.gen_range(0..=(other.len() - from).min(32));
                        data.splice(at..at, other[from..from + len].iter().copied());
                    }
                }
                _ => {
                    let len = data.len();
                    if len > 1 {
                        let (a, b) = (rng.gen_range(0..len), rng.gen_range(0..len));
                        data.swap(a, b);
                    }
                }
            }
        }
        data
    }

    /// Every committed input of every target, then random mutations of them for
    /// `IDLCM_FUZZ_SECONDS` (default 2) per target.
    #[test]
    fn corpus_and_short_random_runs_pass_every_target() {
        let budget = std::env::var("IDLCM_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
        for (name, target) in TARGETS {
            let corpus = inputs(name);
            assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
            for input in &corpus {
                target(input);
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x1d1c);
            let end = Instant::now() + Duration::from_secs(budget);
            let mut runs = 0u64;
            while Instant::now() < end {
                let input = mutate(&mut rng, &corpus);
                let result = std::panic::catch_unwind(|| target(&input));
                assert!(result.is_ok(), "{name}: input {:?}", String::from_utf8_lossy(&input));
                runs += 1;
            }
            println!("fuzz {name}: {} corpus inputs, {runs} mutated runs", corpus.len());
        }
    }
}
