//! Unit tests of `scim/filter/` (in their own file: docs/architecture.md "Layering and style").

use super::*;
use serde_json::json;
use std::cell::RefCell;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const BJENSEN_ID: &str = "2819c223-7f76-453a-919d-413861904646";

/// userName caseExact=false, id/externalId caseExact=true, everything else false.
struct TestSchema;

impl AttrSchema for TestSchema {
    fn case_exact(&self, _uri: Option<&str>, attr: &str, sub: Option<&str>) -> bool {
        sub.is_none() && (attr.eq_ignore_ascii_case("id") || attr.eq_ignore_ascii_case("externalId"))
    }
    fn kind(&self, _uri: Option<&str>, attr: &str, sub: Option<&str>) -> AttrKind {
        let attr = attr.to_ascii_lowercase();
        let sub = sub.map(str::to_ascii_lowercase);
        match (attr.as_str(), sub.as_deref()) {
            ("meta", Some("created" | "lastmodified")) => Some(Type::DateTime),
            ("active", None) | (_, Some("primary")) => Some(Type::Boolean),
            ("logincount", None) => Some(Type::Integer),
            ("score", None) => Some(Type::Decimal),
            ("x509certificates", Some("value")) => Some(Type::Binary),
            (
                "name" | "emails" | "phonenumbers" | "ims" | "addresses" | "groups" | "members" | "x509certificates"
                | "meta" | "manager",
                None,
            ) => Some(Type::Complex),
            _ => Some(Type::String),
        }
    }
}

/// Knows nothing: every attribute is Unknown and case-insensitive.
struct NoSchema;

impl AttrSchema for NoSchema {
    fn case_exact(&self, _: Option<&str>, _: &str, _: Option<&str>) -> bool {
        false
    }
    fn kind(&self, _: Option<&str>, _: &str, _: Option<&str>) -> AttrKind {
        None
    }
}

/// Every attribute caseExact.
struct ExactSchema;

impl AttrSchema for ExactSchema {
    fn case_exact(&self, _: Option<&str>, _: &str, _: Option<&str>) -> bool {
        true
    }
    fn kind(&self, _: Option<&str>, _: &str, _: Option<&str>) -> AttrKind {
        Some(Type::String)
    }
}

type Key = (Option<String>, String, Option<String>);

/// Records the questions asked.
#[derive(Default)]
struct RecordingSchema(RefCell<Vec<Key>>);

impl RecordingSchema {
    fn note(&self, uri: Option<&str>, attr: &str, sub: Option<&str>) {
        self.0.borrow_mut().push((uri.map(str::to_owned), attr.to_owned(), sub.map(str::to_owned)));
    }
    fn asked(&self) -> Vec<Key> {
        self.0.borrow().clone()
    }
}

impl AttrSchema for RecordingSchema {
    fn case_exact(&self, uri: Option<&str>, attr: &str, sub: Option<&str>) -> bool {
        self.note(uri, attr, sub);
        false
    }
    fn kind(&self, uri: Option<&str>, attr: &str, sub: Option<&str>) -> AttrKind {
        self.note(uri, attr, sub);
        Some(Type::String)
    }
}

fn key(uri: Option<&str>, attr: &str, sub: Option<&str>) -> Key {
    (uri.map(str::to_owned), attr.to_owned(), sub.map(str::to_owned))
}

/// RFC 7643 §8.2's full user, plus a few attributes to exercise edge cases.
fn user() -> Value {
    json!({
        "schemas": [CORE_USER, ENT],
        "id": BJENSEN_ID,
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane"
        },
        "displayName": "Babs Jensen",
        "nickName": "",
        "profileUrl": null,
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "loginCount": 42,
        "score": 3.5,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "addresses": [{
            "type": "work",
            "streetAddress": "100 Universal City Plaza",
            "locality": "Hollywood",
            "postalCode": "91608",
            "country": "US",
            "primary": true
        }],
        "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        "entitlements": [],
        "roles": [{"value": null}],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff591\"",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
        },
        ENT: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "John Smith"
            }
        }
    })
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [
            {"value": BJENSEN_ID, "$ref": "../Users/2819c223", "display": "Babs Jensen", "type": "User"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge", "type": "User"}
        ]
    })
}

fn p(input: &str) -> Filter {
    match parse(input) {
        Ok(f) => f,
        Err(e) => panic!("{input:?} should parse: {e}"),
    }
}

fn eval_on(input: &str, resource: &Value, schema: &dyn AttrSchema) -> bool {
    matches(&p(input), resource, schema)
}

/// Evaluates against bjensen with [`TestSchema`].
fn m(input: &str) -> bool {
    eval_on(input, &user(), &TestSchema)
}

fn assert_all(cases: &[(&str, bool)]) {
    let u = user();
    for (input, want) in cases {
        assert_eq!(eval_on(input, &u, &TestSchema), *want, "{input}");
    }
}

fn filter_err(input: &str) -> ScimError {
    match parse(input) {
        Ok(f) => panic!("{input:?} should not parse, got {f:?}"),
        Err(e) => {
            assert_eq!(e.status, 400, "{input:?}");
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{input:?}");
            e
        }
    }
}

fn path_err(input: &str) -> ScimError {
    match parse_patch_path(input) {
        Ok(pp) => panic!("{input:?} should not parse, got {pp:?}"),
        Err(e) => {
            assert_eq!(e.status, 400, "{input:?}");
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{input:?}");
            e
        }
    }
}

fn path(attr: &str) -> AttrPath {
    AttrPath::simple(attr)
}

fn sub_path(attr: &str, sub: &str) -> AttrPath {
    AttrPath { uri: None, attr: attr.into(), sub: Some(sub.into()) }
}

fn cmp(path: AttrPath, op: CompareOp, value: Value) -> Filter {
    Filter::Compare { path, op, value }
}

fn pr(attr: &str) -> Filter {
    Filter::Present(path(attr))
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn not(a: Filter) -> Filter {
    Filter::Not(Box::new(a))
}

// ---- parsing ----

#[test]
fn parses_attribute_comparison() {
    assert_eq!(p(r#"userName eq "bjensen""#), cmp(path("userName"), CompareOp::Eq, json!("bjensen")));
    assert_eq!(
        p(r#"name.familyName co "O'Malley""#),
        cmp(sub_path("name", "familyName"), CompareOp::Co, json!("O'Malley"))
    );
    assert_eq!(p("title pr"), pr("title"));
    assert_eq!(
        p(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#),
        cmp(sub_path("meta", "lastModified"), CompareOp::Gt, json!("2011-05-13T04:42:34Z"))
    );
}

#[test]
fn parses_every_operator_case_insensitively() {
    for (word, op) in [
        ("eq", CompareOp::Eq),
        ("NE", CompareOp::Ne),
        ("Co", CompareOp::Co),
        ("sW", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("GT", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("Lt", CompareOp::Lt),
        ("lE", CompareOp::Le),
    ] {
        assert_eq!(p(&format!("x {word} 1")), cmp(path("x"), op, json!(1)), "{word}");
    }
    assert_eq!(p("x PR"), pr("x"));
    assert_eq!(p("a pr AND b pr Or NOT (c pr)"), or(and(pr("a"), pr("b")), not(pr("c"))));
}

#[test]
fn precedence_is_not_then_and_then_or() {
    assert_eq!(p("a pr or b pr and c pr"), or(pr("a"), and(pr("b"), pr("c"))));
    assert_eq!(p("a pr and b pr or c pr"), or(and(pr("a"), pr("b")), pr("c")));
    assert_eq!(p("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
    assert_eq!(p("a pr or not (b pr) and c pr"), or(pr("a"), and(not(pr("b")), pr("c"))));
    // Left-associative chains.
    assert_eq!(p("a pr and b pr and c pr"), and(and(pr("a"), pr("b")), pr("c")));
    assert_eq!(p("a pr or b pr or c pr"), or(or(pr("a"), pr("b")), pr("c")));
}

#[test]
fn parentheses_group() {
    assert_eq!(p("(a pr or b pr) and c pr"), and(or(pr("a"), pr("b")), pr("c")));
    assert_eq!(p("a pr and (b pr or c pr)"), and(pr("a"), or(pr("b"), pr("c"))));
    assert_eq!(p("((((a pr))))"), pr("a"));
    assert_eq!(p("not(a pr)"), not(pr("a")));
    assert_eq!(p("not ( not (a pr) )"), not(not(pr("a"))));
}

#[test]
fn tolerates_extra_whitespace() {
    assert_eq!(
        p("  userName   eq\t\"x\"  and\n title  pr  "),
        and(cmp(path("userName"), CompareOp::Eq, json!("x")), pr("title"))
    );
    assert_eq!(p("( a pr )"), pr("a"));
}

#[test]
fn parses_literal_values() {
    let value = |f: &str| match p(f) {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value(r#"x eq "a\"b""#), json!("a\"b"));
    assert_eq!(value(r#"x eq "back\\slash \/ \b\f\n\r\t""#), json!("back\\slash / \u{8}\u{c}\n\r\t"));
    assert_eq!(value(r#"x eq "caf\u00e9 \ud83d\ude00""#), json!("café 😀"));
    assert_eq!(value(r#"x eq "(not) [a] and or""#), json!("(not) [a] and or"));
    assert_eq!(value(r#"x eq """#), json!(""));
    assert_eq!(value(r#"x eq "ünïcødé""#), json!("ünïcødé"));
    assert_eq!(value("x eq 42"), json!(42));
    assert_eq!(value("x eq -7"), json!(-7));
    assert_eq!(value("x eq 3.25"), json!(3.25));
    assert_eq!(value("x eq -0.5e2"), json!(-50.0));
    assert_eq!(value("x eq 18446744073709551615"), json!(u64::MAX));
    assert_eq!(value("x eq true"), json!(true));
    assert_eq!(value("x eq FALSE"), json!(false));
    assert_eq!(value("x eq Null"), Value::Null);
}

#[test]
fn accepts_unquoted_values_as_strings() {
    let value = |f: &str| match p(f) {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("externalId eq jyoung"), json!("jyoung"));
    assert_eq!(value("userName eq alice@example.com"), json!("alice@example.com"));
    assert_eq!(value("externalId eq 007"), json!("007"));
    assert_eq!(value("x eq 2011-05-13"), json!("2011-05-13"));
    assert_eq!(value("x eq 1e999"), json!("1e999"));
    // Numbers parse to the nearest f64, so they print back to the same value.
    let f = parse("x ge -11e32").unwrap();
    assert_eq!(parse(&f.to_string()).unwrap(), f, "{f}");
    assert_eq!(value("x eq not"), json!("not"));
    assert_eq!(
        p("(externalId eq jyoung) and userName sw a"),
        and(cmp(path("externalId"), CompareOp::Eq, json!("jyoung")), cmp(path("userName"), CompareOp::Sw, json!("a")))
    );
    assert!(m("externalId eq 701984"));
    assert!(m("userName eq BJensen@Example.com"));
}

#[test]
fn parses_urn_qualified_paths() {
    assert_eq!(
        p(&format!(r#"{CORE_USER}:userName sw "J""#)),
        cmp(AttrPath { uri: Some(CORE_USER.into()), attr: "userName".into(), sub: None }, CompareOp::Sw, json!("J"))
    );
    assert_eq!(
        p(&format!(r#"{ENT}:employeeNumber eq "701984""#)),
        cmp(
            AttrPath { uri: Some(ENT.into()), attr: "employeeNumber".into(), sub: None },
            CompareOp::Eq,
            json!("701984")
        )
    );
    assert_eq!(
        p(&format!("{ENT}:manager.value pr")),
        Filter::Present(AttrPath { uri: Some(ENT.into()), attr: "manager".into(), sub: Some("value".into()) })
    );
    assert_eq!(
        p(&format!("{ENT}:manager.$ref pr")),
        Filter::Present(AttrPath { uri: Some(ENT.into()), attr: "manager".into(), sub: Some("$ref".into()) })
    );
    assert_eq!(p("members.$ref pr"), Filter::Present(sub_path("members", "$ref")));
    assert_eq!(p("x-y_z9 pr"), pr("x-y_z9"));
}

#[test]
fn split_urn_splits_at_the_last_colon() {
    assert_eq!(split_urn("userName"), (None, "userName"));
    assert_eq!(split_urn("name.givenName"), (None, "name.givenName"));
    assert_eq!(split_urn(&format!("{ENT}:manager.value")), (Some(ENT), "manager.value"));
    assert_eq!(split_urn(&format!("{CORE_USER}:userName")), (Some(CORE_USER), "userName"));
    assert_eq!(split_urn("URN:a:b:attr"), (Some("URN:a:b"), "attr"));
    assert_eq!(split_urn("urn:"), (Some("urn"), ""));
    assert_eq!(split_urn("urnx:a"), (None, "urnx:a"));
    assert_eq!(split_urn("ur"), (None, "ur"));
    assert_eq!(split_urn("é"), (None, "é"));
}

#[test]
fn parse_attr_path_handles_plain_and_qualified_names() {
    assert_eq!(parse_attr_path("name.givenName").ok(), Some(sub_path("name", "givenName")));
    assert_eq!(
        parse_attr_path(&format!("{ENT}:department")).ok(),
        Some(AttrPath { uri: Some(ENT.into()), attr: "department".into(), sub: None })
    );
    for bad in ["", "1a", "a.b.c", "a b", "urn:x::y", "urn:x:"] {
        let e = parse_attr_path(bad).expect_err(bad);
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad}");
    }
}

#[test]
fn parses_value_paths() {
    let emails_work = cmp(path("type"), CompareOp::Eq, json!("work"));
    assert_eq!(
        p(r#"emails[type eq "work" and value co "@example.com"]"#),
        Filter::ValuePath {
            path: path("emails"),
            filter: Box::new(and(emails_work.clone(), cmp(path("value"), CompareOp::Co, json!("@example.com"))))
        }
    );
    assert_eq!(
        p(r#"emails[type eq "work"] and userName sw "a""#),
        and(
            Filter::ValuePath { path: path("emails"), filter: Box::new(emails_work.clone()) },
            cmp(path("userName"), CompareOp::Sw, json!("a"))
        )
    );
    assert_eq!(
        p(&format!(r#"{ENT}:manager[value eq "x"]"#)),
        Filter::ValuePath {
            path: AttrPath { uri: Some(ENT.into()), attr: "manager".into(), sub: None },
            filter: Box::new(cmp(path("value"), CompareOp::Eq, json!("x")))
        }
    );
    assert_eq!(
        p(r#"emails[not (type eq "work") or (primary eq true)]"#),
        Filter::ValuePath {
            path: path("emails"),
            filter: Box::new(or(not(emails_work), cmp(path("primary"), CompareOp::Eq, json!(true))))
        }
    );
}

#[test]
fn parses_entra_value_path_with_sub_attribute() {
    assert_eq!(
        p(r#"emails[type eq "work"].value eq "user@contoso.com""#),
        Filter::ValuePath {
            path: path("emails"),
            filter: Box::new(and(
                cmp(path("type"), CompareOp::Eq, json!("work")),
                cmp(path("value"), CompareOp::Eq, json!("user@contoso.com"))
            ))
        }
    );
    assert_eq!(
        p(r#"emails[type eq "work"].value pr and active eq true"#),
        and(
            Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(and(cmp(path("type"), CompareOp::Eq, json!("work")), Filter::Present(path("value"))))
            },
            cmp(path("active"), CompareOp::Eq, json!(true))
        )
    );
    assert!(m(r#"emails[type eq "work"].value eq "bjensen@example.com""#));
    assert!(m(r#"EMAILS[TYPE EQ "WORK"].VALUE EQ "BJensen@example.com""#));
    assert!(!m(r#"emails[type eq "home"].value eq "bjensen@example.com""#));
    assert!(m(r#"emails[type eq "home"].value ew ".org""#));
    assert!(m(r#"emails[type eq "work"].primary eq true"#));
    assert!(!m(r#"emails[type eq "home"].primary eq true"#));
}

#[test]
fn rfc7644_filter_examples_parse() {
    // RFC 7644 §3.4.2.2, every example filter.
    for f in [
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        // §3.4.2.2 operator table and §3.4.3 examples.
        r#"displayName eq "Tour Guides""#,
        r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
        r#"meta.resourceType eq "User""#,
    ] {
        let parsed = p(f);
        assert!(validate(&parsed, &TestSchema).is_ok(), "{f}");
    }
}

#[test]
fn rfc7644_filter_examples_evaluate() {
    assert_all(&[
        (r#"userName eq "bjensen@example.com""#, true),
        (r#"userName eq "bjensen""#, false),
        (r#"name.familyName co "O'Malley""#, false),
        (r#"userName sw "J""#, false),
        (r#"userName sw "b""#, true),
        (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "B""#, true),
        ("title pr", true),
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
        (r#"title pr and userType eq "Employee""#, true),
        (r#"title pr and userType eq "Intern""#, false),
        (r#"title pr or userType eq "Intern""#, true),
        (r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#, true),
        (r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#, true),
        (r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#, false),
        (r#"userType eq "Employee" and (emails.type eq "work")"#, true),
        (r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#, true),
        (r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#, true),
        (r#"emails[type eq "home" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#, false),
    ]);
    let omalley = json!({"name": {"familyName": "O'Malley"}});
    assert!(eval_on(r#"name.familyName co "O'Malley""#, &omalley, &TestSchema));
    assert!(eval_on(r#"name.familyName co "'mal""#, &omalley, &TestSchema));
}

#[test]
fn display_round_trips() {
    for f in [
        r#"userName eq "a\"b""#,
        "a pr or b pr and c pr",
        "(a pr or b pr) and c pr",
        "a pr and (b pr and c pr)",
        "a pr or (b pr or c pr)",
        "not (a pr or b lt 3.5) and x eq null",
        r#"emails[type eq "work" and not (value co "@x")] or ims[type eq "xmpp"]"#,
        r#"emails[type eq "work" or type eq "home"].value eq "x""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value ne "y""#,
    ] {
        let parsed = p(f);
        let printed = parsed.to_string();
        assert_eq!(p(&printed), parsed, "{f} -> {printed}");
    }
    assert_eq!(p("a PR AND b Eq 1").to_string(), "a pr and b eq 1");
    assert_eq!(p(r#"emails[type eq "work"].value eq "x""#).to_string(), r#"emails[type eq "work" and value eq "x"]"#);
}

// ---- filter errors ----

#[test]
fn rejects_malformed_filters() {
    for (input, detail) in [
        ("", "empty"),
        ("   \t ", "empty"),
        ("userName", "missing operator"),
        ("userName eq", "missing value"),
        (r#"userName eq "x" and"#, "unexpected end"),
        (r#"userName eq "x" or "#, "unexpected end"),
        ("userName eq and title pr", "missing value"),
        (r#"userName foo "x""#, "unknown operator 'foo'"),
        (r#"userName equals "x""#, "unknown operator 'equals'"),
        (r#"userName "x""#, "expected an operator"),
        (r#"(userName eq "x""#, "missing ')'"),
        (r#"((userName eq "x")"#, "missing ')'"),
        (r#"userName eq "x")"#, "unbalanced ')'"),
        (r#"userName eq "x"]"#, "unbalanced ']'"),
        ("()", "unexpected ')'"),
        ("(", "unexpected end"),
        (")", "unexpected ')'"),
        (r#"emails[type eq "work""#, "missing ']'"),
        (r#"emails[type eq "work")"#, "expected 'and', 'or' or ']'"),
        (r#"emails[type eq "work"]]"#, "unbalanced ']'"),
        ("emails[]", "unexpected ']'"),
        (r#"emails[value[type eq "x"]]"#, "nested value filter"),
        (r#"emails[type eq "work"] eq "x""#, "unexpected 'eq'"),
        (r#"emails[type eq "work"].value"#, "missing operator"),
        (r#"emails[type eq "work"].9x eq 1"#, "invalid sub-attribute"),
        (r#"emails[type eq "work"].value.x eq 1"#, "invalid sub-attribute"),
        (r#"emails[name.type eq "work"]"#, "plain sub-attribute"),
        (r#"name.familyName[type eq "x"]"#, "cannot follow the sub-attribute"),
        (r#"userName eq "abc"#, "unterminated string"),
        (r#"userName eq "abc\""#, "unterminated string"),
        (r#"userName eq "a\qb""#, "invalid escape"),
        (r#"userName eq "\u12""#, "invalid escape"),
        (r#"userName eq "\ud83d""#, "invalid escape"),
        (r#"userName eq "\ud83dx\u0041""#, "invalid escape"),
        (r#"userName eq "\udc00""#, "invalid escape"),
        (r#"userName eq "x" garbage"#, "unexpected 'garbage'"),
        (r#"userName eq "x" "y""#, "unexpected string"),
        (r#"userName eq "x" (title pr)"#, "unexpected '('"),
        (r#"not userName eq "x""#, "must be followed by a parenthesized filter"),
        ("not", "must be followed by a parenthesized filter"),
        ("not (a pr", "missing ')'"),
        (r#"1userName eq "x""#, "invalid attribute name '1userName'"),
        (r#"name.given.name eq "x""#, "invalid sub-attribute"),
        (r#"name. eq "x""#, "invalid sub-attribute"),
        (r#".name eq "x""#, "invalid attribute name"),
        (r#"user@name eq "x""#, "invalid attribute name"),
        (r#"urn:ietf::x:userName eq "x""#, "invalid schema URN"),
        (r#"urn:ietf:params:scim:schemas:core:2.0:User: eq "x""#, "missing attribute name"),
        (r#"urn:ietf:params$:User:userName eq "x""#, "invalid schema URN"),
        (r#""userName" eq "x""#, "unexpected string"),
        ("and pr and", "unexpected end"),
    ] {
        let e = filter_err(input);
        assert!(e.detail.contains(detail), "{input:?}: {:?} lacks {detail:?}", e.detail);
    }
}

#[test]
fn error_details_name_the_position() {
    assert_eq!(
        filter_err(r#"userName foo "x""#).detail,
        "unknown operator 'foo' at position 10: expected one of eq, ne, co, sw, ew, gt, ge, lt, le, pr"
    );
    assert_eq!(filter_err(r#"(a pr"#).detail, "missing ')' to close '(' at position 1");
    assert!(filter_err(r#"a pr b"#).detail.contains("position 6"));
    // Positions count characters, not bytes.
    assert!(filter_err(r#"x eq "é" b"#).detail.contains("position 10"));
    // Long tokens are shortened.
    let long = format!("a pr {}", "z".repeat(500));
    assert!(filter_err(&long).detail.len() < 200);
}

#[test]
fn limits_nesting_depth() {
    let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(p(&nested(MAX_FILTER_DEPTH)), pr("a"));
    assert!(filter_err(&nested(MAX_FILTER_DEPTH + 1)).detail.contains("nesting deeper"));
    let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
    assert!(parse(&nots(MAX_FILTER_DEPTH)).is_ok());
    assert!(filter_err(&nots(MAX_FILTER_DEPTH + 1)).detail.contains("nesting deeper"));
    // Hostile input well past the limit fails cleanly (no stack overflow).
    assert!(filter_err(&"(".repeat(4000)).detail.contains("nesting deeper"));
    assert!(filter_err(&"not(".repeat(1000)).detail.contains("nesting deeper"));
    let brackets = format!("{}]", "a[".repeat(1000));
    assert!(filter_err(&brackets).detail.contains("nested value filter"));
}

#[test]
fn limits_length() {
    let quoted = |n: usize| format!(r#"userName eq "{}""#, "a".repeat(n - 14));
    assert_eq!(quoted(MAX_FILTER_LEN).chars().count(), MAX_FILTER_LEN);
    assert!(parse(&quoted(MAX_FILTER_LEN)).is_ok());
    assert!(filter_err(&quoted(MAX_FILTER_LEN + 1)).detail.contains("longer than"));
    // Multi-byte characters count once.
    let wide = format!(r#"userName eq "{}""#, "é".repeat(MAX_FILTER_LEN - 14));
    assert!(parse(&wide).is_ok());
    // A long flat `and` chain within the limit parses and evaluates.
    let chain = vec!["a pr"; 450].join(" and ");
    assert!(chain.len() <= MAX_FILTER_LEN);
    assert!(!matches(&p(&chain), &user(), &TestSchema));
}

/// Deterministic junk built from filter fragments: parse never panics; errors are 400 invalidFilter.
#[test]
fn never_panics_on_junk() {
    const PIECES: [&str; 30] = [
        "(", ")", "[", "]", "\"", "\\", "\\u", "d83d", "\"x\"", " ", "and", "or", "not", "pr", "eq", "gt", "emails",
        ".", "value", "urn:", ":", "1", "-", "e5", "é", "\t", "$ref", "null", "true", "a]b",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    let u = user();
    for _ in 0..5000 {
        let len = next() % 12;
        let s: String = (0..len).map(|_| PIECES[next() % PIECES.len()]).collect();
        match parse(&s) {
            Ok(f) => {
                let _ = matches(&f, &u, &TestSchema);
                let _ = validate(&f, &TestSchema);
                assert_eq!(p(&f.to_string()), f, "{s:?}");
            }
            Err(e) => assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{s:?}"),
        }
        if let Err(e) = parse_patch_path(&s) {
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{s:?}");
        }
    }
    // Every prefix of some valid inputs.
    for full in [
        r#"userType eq "Employee" and emails[type eq "work" and value co "@ex\u00e9"].value pr"#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value ne "é""#,
    ] {
        for (i, _) in full.char_indices() {
            let _ = parse(&full[..i]);
            let _ = parse_patch_path(&full[..i]);
        }
    }
}

// ---- evaluation: operators ----

#[test]
fn eq_and_ne_on_strings() {
    assert_all(&[
        (r#"userName eq "bjensen@example.com""#, true),
        (r#"userName eq "BJENSEN@EXAMPLE.COM""#, true),
        (r#"userName eq "bjensen@example""#, false),
        (r#"userName ne "BJENSEN@example.com""#, false),
        (r#"userName ne "someone""#, true),
        (r#"displayName eq "babs jensen""#, true),
        (r#"name.familyName eq "jensen""#, true),
        (r#"name.givenName ne "Barbara""#, false),
        // ne on an absent attribute is true (`not (eq)`).
        (r#"nosuch ne "x""#, true),
        (r#"nosuch eq "x""#, false),
        (r#"name.nosuch ne "x""#, true),
    ]);
}

#[test]
fn case_exact_attributes_compare_case_sensitively() {
    let upper = BJENSEN_ID.to_uppercase();
    assert_all(&[
        (&format!(r#"id eq "{BJENSEN_ID}""#), true),
        (&format!(r#"id eq "{upper}""#), false),
        (&format!(r#"id ne "{upper}""#), true),
        (r#"id sw "2819C""#, false),
        (r#"id sw "2819c""#, true),
        (r#"id lt "2819D""#, false),
        (r#"externalId eq "701984""#, true),
        (r#"ID eq "2819c223-7f76-453a-919d-413861904646""#, true),
    ]);
    // With a case-insensitive schema the same comparisons match.
    let u = user();
    assert!(eval_on(&format!(r#"id eq "{upper}""#), &u, &NoSchema));
    assert!(eval_on(r#"id lt "2819D""#, &u, &NoSchema));
    // And with an all-caseExact schema userName no longer ignores case.
    assert!(!eval_on(r#"userName eq "BJENSEN@example.com""#, &u, &ExactSchema));
    assert!(eval_on(r#"userName eq "bjensen@example.com""#, &u, &ExactSchema));
    assert!(!eval_on(r#"emails co "EXAMPLE""#, &u, &ExactSchema));
    assert!(eval_on(r#"emails co "EXAMPLE""#, &u, &TestSchema));
}

#[test]
fn co_sw_ew_on_strings() {
    assert_all(&[
        (r#"name.familyName co "ens""#, true),
        (r#"name.familyName co "ENS""#, true),
        (r#"name.familyName co "xyz""#, false),
        (r#"userName sw "BJ""#, true),
        (r#"userName sw "jensen""#, false),
        (r#"userName ew ".COM""#, true),
        (r#"userName ew "example""#, false),
        (r#"title co """#, true),
        (r#"nosuch co "a""#, false),
        (r#"externalId sw "70""#, true),
        (r#"externalId ew "84""#, true),
        (r#"meta.location co "/Users/""#, true),
    ]);
}

#[test]
fn ordering_on_strings_is_lexicographic() {
    assert_all(&[
        (r#"title gt "Tour""#, true),
        (r#"title gt "tour guide""#, false),
        (r#"title ge "TOUR GUIDE""#, true),
        (r#"title le "tour guide""#, true),
        (r#"title lt "tour guide""#, false),
        (r#"title lt "U""#, true),
        (r#"title gt "Z""#, false),
        (r#"nosuch gt "a""#, false),
        (r#"nosuch lt "z""#, false),
    ]);
}

#[test]
fn comparisons_on_numbers() {
    assert_all(&[
        ("loginCount eq 42", true),
        ("loginCount eq 42.0", true),
        ("loginCount eq 41", false),
        ("loginCount ne 41", true),
        ("loginCount ne 42", false),
        ("loginCount gt 41", true),
        ("loginCount gt 42", false),
        ("loginCount ge 42", true),
        ("loginCount ge 43", false),
        ("loginCount lt 43", true),
        ("loginCount lt 42", false),
        ("loginCount le 42", true),
        ("loginCount le 41.5", false),
        ("loginCount gt -1", true),
        (r#"loginCount eq "42""#, true),
        (r#"loginCount gt "4""#, true),
        (r#"loginCount eq "forty-two""#, false),
        ("loginCount co 2", true),
        ("loginCount sw 5", false),
        ("score eq 3.5", true),
        ("score gt 3.4", true),
        ("score lt 4", true),
        ("score ge 3.50", true),
        ("score le 3.49", false),
        // Strings that hold numbers compare numerically against number operands.
        ("externalId eq 701984", true),
        ("externalId gt 700000", true),
        ("externalId lt 9", false),
        ("title eq 5", false),
    ]);
}

#[test]
fn comparisons_on_booleans() {
    assert_all(&[
        ("active eq true", true),
        ("active eq TRUE", true),
        ("active eq false", false),
        ("active ne false", true),
        ("active ne true", false),
        (r#"active eq "true""#, true),
        (r#"active eq "True""#, true),
        (r#"active eq "false""#, false),
        ("active eq 1", false),
        ("active gt false", false),
        ("emails.primary eq true", true),
        ("emails[primary eq true]", true),
        (r#"emails[primary eq true and type eq "home"]"#, false),
        ("nosuch eq false", false),
        ("nosuch ne false", true),
    ]);
    // A string attribute compared with a boolean literal compares the text.
    let r = json!({"flag": "TRUE"});
    assert!(eval_on("flag eq true", &r, &NoSchema));
    assert!(!eval_on("flag eq false", &r, &NoSchema));
}

#[test]
fn comparisons_on_date_times() {
    assert_all(&[
        (r#"meta.lastModified eq "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
        (r#"meta.lastModified eq "2011-05-13T04:42:34.000Z""#, true),
        (r#"meta.lastModified ne "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified gt "2011-05-13T04:42:33.999Z""#, true),
        (r#"meta.lastModified gt "2011-05-13T05:42:34+02:00""#, true),
        (r#"meta.lastModified lt "2011-05-13T05:42:34+02:00""#, false),
        (r#"meta.lastModified lt "2011-05-13T04:42:35Z""#, true),
        (r#"meta.lastModified le "2011-05-13T04:42:33Z""#, false),
        (r#"meta.lastModified ge "2011-05-13T04:42:35Z""#, false),
        (r#"meta.created lt "2011-01-01T00:00:00Z""#, true),
        (r#"meta.created gt "2010-01-23T04:56:22""#, false),
        (r#"meta.created ge "2010-01-23T04:56:22""#, true),
        // Unparsable operands fall back to string comparison.
        (r#"meta.lastModified gt "2011""#, true),
        (r#"meta.lastModified lt "2011""#, false),
        (r#"meta.lastModified sw "2011-05""#, true),
        (r#"meta.lastModified co "T04""#, true),
        (r#"meta.lastModified ew "Z""#, true),
        (r#"META.LASTMODIFIED GE "2011-05-13T04:42:34Z""#, true),
    ]);
    // meta.created / meta.lastModified are dateTimes even when the schema does not say so.
    let u = user();
    assert!(eval_on(r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, &u, &NoSchema));
    assert!(eval_on(r#"meta.created lt "2010-01-23T05:56:22+00:30""#, &u, &NoSchema));
    // Other attributes are dateTimes when the schema says so.
    struct Dates;
    impl AttrSchema for Dates {
        fn case_exact(&self, _: Option<&str>, _: &str, _: Option<&str>) -> bool {
            false
        }
        fn kind(&self, _: Option<&str>, _: &str, _: Option<&str>) -> AttrKind {
            Some(Type::DateTime)
        }
    }
    let r = json!({"hired": "2020-02-01T00:00:00+01:00"});
    assert!(eval_on(r#"hired eq "2020-01-31T23:00:00Z""#, &r, &Dates));
    assert!(eval_on(r#"hired lt "2020-01-31T23:00:01Z""#, &r, &Dates));
    assert!(!eval_on(r#"hired eq "2020-01-31T23:00:00Z""#, &r, &NoSchema));
}

#[test]
fn presence() {
    assert_all(&[
        ("title pr", true),
        ("TITLE PR", true),
        ("nickName pr", false),
        ("profileUrl pr", false),
        ("nosuch pr", false),
        ("name pr", true),
        ("name.givenName pr", true),
        ("name.honorificPrefix pr", false),
        ("emails pr", true),
        ("emails.value pr", true),
        ("emails.primary pr", true),
        ("emails.display pr", false),
        ("entitlements pr", false),
        ("roles pr", false),
        ("roles.value pr", false),
        ("active pr", true),
        ("loginCount pr", true),
        (&format!("{ENT}:manager pr"), true),
        (&format!("{ENT}:manager.displayName pr"), true),
        (&format!("{ENT}:manager.$ref pr"), true),
        (&format!("{ENT}:costCenter pr"), true),
        (&format!("{ENT}:nosuch pr"), false),
        ("not (title pr)", false),
        ("not (nickName pr)", true),
    ]);
    assert!(!eval_on("a pr", &json!({"a": {"b": null, "c": ""}}), &NoSchema));
    assert!(!eval_on("a pr", &json!({"a": {}}), &NoSchema));
    assert!(eval_on("a pr", &json!({"a": false}), &NoSchema));
    assert!(eval_on("a pr", &json!({"a": 0}), &NoSchema));
}

#[test]
fn null_comparisons() {
    assert_all(&[
        ("profileUrl eq null", true),
        ("nosuch eq null", true),
        ("nickName eq null", true),
        ("title eq null", false),
        ("title ne null", true),
        ("profileUrl ne null", false),
        ("nosuch ne null", false),
        ("emails eq null", false),
        ("entitlements eq null", true),
        ("title gt null", false),
        ("title co null", false),
    ]);
}

#[test]
fn logical_operators_evaluate() {
    assert_all(&[
        (r#"title pr and userType eq "Employee""#, true),
        (r#"title pr and userType eq "Intern""#, false),
        (r#"nosuch pr or userType eq "Employee""#, true),
        (r#"nosuch pr or userType eq "Intern""#, false),
        (r#"not (userType eq "Intern")"#, true),
        (r#"not (userType eq "Employee")"#, false),
        // or binds looser than and: true or (false and false) = true.
        (r#"title pr or nosuch pr and userType eq "Intern""#, true),
        // Parenthesized: (true or false) and false = false.
        (r#"(title pr or nosuch pr) and userType eq "Intern""#, false),
        (r#"not (nosuch pr) and not (userType eq "Intern")"#, true),
        (r#"not (not (title pr))"#, true),
    ]);
}

// ---- evaluation: multi-valued and complex attributes ----

#[test]
fn multi_valued_attributes_match_any_value() {
    assert_all(&[
        (r#"emails co "example.com""#, true),
        (r#"emails eq "babs@jensen.org""#, true),
        (r#"emails eq "BABS@JENSEN.ORG""#, true),
        (r#"emails ew ".net""#, false),
        (r#"emails ne "babs@jensen.org""#, false),
        (r#"emails ne "nobody@example.com""#, true),
        (r#"emails.value ew ".org""#, true),
        (r#"emails.type eq "home""#, true),
        (r#"emails.type ne "home""#, false),
        (r#"emails.type eq "other""#, false),
        (r#"emails.type ne "other""#, true),
        (r#"phoneNumbers eq "555-555-5555""#, true),
        (r#"groups eq "e9e30dba-f08f-4109-8486-d5c6a331660a""#, true),
        (r#"groups.display sw "tour""#, true),
        (r#"addresses.postalCode eq "91608""#, true),
        (r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:User""#, true),
        (r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:Group""#, false),
        (r#"entitlements eq "x""#, false),
        (r#"entitlements ne "x""#, true),
    ]);
    let tags = json!({"tags": ["red", "green"], "nums": [1, 5, 9]});
    assert!(eval_on(r#"tags eq "GREEN""#, &tags, &NoSchema));
    assert!(!eval_on(r#"tags eq "blue""#, &tags, &NoSchema));
    assert!(eval_on("nums gt 8", &tags, &NoSchema));
    assert!(!eval_on("nums gt 9", &tags, &NoSchema));
    assert!(eval_on("nums lt 2", &tags, &NoSchema));
}

#[test]
fn complex_single_valued_attributes() {
    assert_all(&[
        (r#"name.givenName eq "barbara""#, true),
        (r#"name.formatted co "Jensen, III""#, true),
        (r#"name eq "Barbara""#, false),
        (r#"meta.resourceType eq "User""#, true),
        (r#"meta.version eq "W/\"3694e05e9dff591\"""#, true),
    ]);
}

#[test]
fn value_paths_evaluate() {
    assert_all(&[
        (r#"emails[type eq "work" and value co "@example.com"]"#, true),
        (r#"emails[type eq "home" and value co "@example.com"]"#, false),
        (r#"emails[type eq "home" or value co "@nowhere"]"#, true),
        (r#"emails[type eq "other" or value co "@nowhere"]"#, false),
        (r#"emails[not (type eq "work")]"#, true),
        (r#"emails[not (type eq "work") and primary eq true]"#, false),
        (r#"emails[(type eq "home" or type eq "work") and value ew ".org"]"#, true),
        (r#"emails[type ne "work"]"#, true),
        (r#"emails[display pr]"#, false),
        (r#"emails[value pr]"#, true),
        (r#"emails[TYPE Eq "WORK"]"#, true),
        (r#"Emails[type eq "work"] and userName sw "b""#, true),
        (r#"addresses[type eq "work" and postalCode eq "91608"]"#, true),
        (r#"addresses[type eq "work"] and not (addresses[country eq "CA"])"#, true),
        (r#"ims[type eq "xmpp"]"#, false),
        (r#"nosuch[type eq "work"]"#, false),
        (r#"title[type eq "work"]"#, false),
        (r#"name[givenName eq "Barbara"]"#, true),
        (&format!(r#"{ENT}:manager[displayName sw "john"]"#), true),
        (&format!(r#"{ENT}:manager[value eq "nobody"]"#), false),
    ]);
}

#[test]
fn group_members() {
    let g = group();
    let t = |f: &str| eval_on(f, &g, &TestSchema);
    assert!(t(&format!(r#"members[value eq "{BJENSEN_ID}"]"#)));
    assert!(t(&format!(r#"members eq "{BJENSEN_ID}""#)));
    assert!(t(&format!(r#"members.value eq "{BJENSEN_ID}""#)));
    assert!(!t(r#"members[value eq "nobody"]"#));
    assert!(t(r#"members.display co "pepper""#));
    assert!(t(r#"displayName eq "tour guides" and members[type eq "User"]"#));
    assert!(t(r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Tour Guides""#));
    // The User core URN does not name a Group's attributes.
    assert!(!t(r#"urn:ietf:params:scim:schemas:core:2.0:User:displayName eq "Tour Guides""#));
}

// ---- evaluation: names and URNs ----

#[test]
fn attribute_names_are_case_insensitive() {
    assert_all(&[
        (r#"USERNAME eq "bjensen@example.com""#, true),
        (r#"DisplayName eq "Babs Jensen""#, true),
        (r#"NAME.FAMILYNAME eq "Jensen""#, true),
        (r#"emails.VALUE ew ".org""#, true),
        (r#"EMAILS[TYPE eq "work"]"#, true),
        (r#"Meta.LastModified eq "2011-05-13T04:42:34Z""#, true),
    ]);
}

#[test]
fn urn_qualified_attributes() {
    assert_all(&[
        (&format!(r#"{CORE_USER}:userName sw "bj""#), true),
        (&format!(r#"{CORE_USER}:name.familyName eq "jensen""#), true),
        (&format!(r#"{CORE_USER}:emails[type eq "work"]"#), true),
        (&format!(r#"{ENT}:employeeNumber eq "701984""#), true),
        (&format!(r#"{ENT}:department eq "tour operations""#), true),
        (&format!(r#"{ENT}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#), true),
        (&format!(r#"{ENT}:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#), true),
        (&format!(r#"{ENT}:manager.displayName eq "John Smith""#), true),
        (&format!(r#"{ENT}:userName pr"#), false),
        (&format!(r#"{ENT}:employeeNumber ne "1""#), true),
        // Extension attributes are not visible unqualified.
        (r#"employeeNumber eq "701984""#, false),
        (r#"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT eq "Tour Operations""#, true),
        (r#"urn:ietf:params:scim:schemas:core:2.0:user:USERNAME eq "bjensen@example.com""#, true),
        (r#"urn:ietf:params:scim:schemas:core:2.0:Group:userName pr"#, false),
        (r#"urn:ietf:params:scim:schemas:extension:other:2.0:User:department pr"#, false),
    ]);
    // A resource without `schemas` accepts any core URN.
    let bare = json!({"userName": "x"});
    assert!(eval_on(&format!(r#"{CORE_USER}:userName eq "x""#), &bare, &NoSchema));
    // Custom extensions.
    let custom = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let r = json!({"schemas": [CORE_USER, custom], custom: {"CustomAttribute": "v-1"}});
    assert!(eval_on(&format!(r#"{custom}:customattribute eq "V-1""#), &r, &NoSchema));
}

#[test]
fn schema_is_asked_about_the_right_attribute() {
    let u = user();
    let ask = |f: &str| {
        let s = RecordingSchema::default();
        matches(&p(f), &u, &s);
        s.asked()
    };
    assert!(ask(r#"userName eq "x""#).contains(&key(None, "userName", None)));
    assert!(ask(r#"emails[type eq "work"]"#).contains(&key(None, "emails", Some("type"))));
    assert!(ask(&format!(r#"{ENT}:manager[value eq "x"]"#)).contains(&key(Some(ENT), "manager", Some("value"))));
    assert!(ask(&format!(r#"{ENT}:manager.displayName eq "x""#)).contains(&key(
        Some(ENT),
        "manager",
        Some("displayName")
    )));
    // Multi-valued complex compared without a sub-attribute: the implied `value`.
    assert!(ask(r#"emails co "x""#).contains(&key(None, "emails", Some("value"))));
    // Simple multi-valued attributes are asked about as written.
    assert!(ask(r#"schemas eq "x""#).contains(&key(None, "schemas", None)));
    // Entra form.
    assert!(ask(r#"EMAILS[type eq "work"].Value eq "x""#).contains(&key(None, "EMAILS", Some("Value"))));
}

#[test]
fn non_object_resources_match_nothing() {
    for r in [json!(null), json!([]), json!("userName"), json!(1)] {
        assert!(!eval_on(r#"userName eq "x""#, &r, &TestSchema));
        assert!(!eval_on("userName pr", &r, &TestSchema));
        assert!(eval_on("not (userName pr)", &r, &TestSchema));
    }
}

#[test]
fn attribute_named_like_a_keyword() {
    assert_eq!(p("not pr"), pr("not"));
    assert_eq!(p(r#"not eq "x""#), cmp(path("not"), CompareOp::Eq, json!("x")));
    assert_eq!(p("and pr and or pr"), and(pr("and"), pr("or")));
    assert!(eval_on(r#"not eq "x""#, &json!({"not": "X"}), &NoSchema));
}

// ---- validation ----

#[test]
fn validate_rejects_ordering_on_boolean_binary_and_complex() {
    for (f, detail) in [
        ("active gt true", "needs a string"),
        (r#"active gt "a""#, "boolean attribute 'active'"),
        (r#"active le "a""#, "boolean attribute 'active'"),
        (r#"x509Certificates.value lt "M""#, "binary attribute 'x509Certificates.value'"),
        (r#"emails ge "a""#, "complex attribute 'emails'"),
        (r#"name gt "a""#, "complex attribute 'name'"),
        ("emails[primary gt 0]", "boolean attribute 'emails.primary'"),
        (r#"title pr and not (active lt "x")"#, "boolean attribute 'active'"),
        ("userName gt null", "needs a string"),
    ] {
        let e = validate(&p(f), &TestSchema).expect_err(f);
        assert_eq!(e.status, 400, "{f}");
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f}");
        assert!(e.detail.contains(detail), "{f}: {}", e.detail);
    }
    for f in [
        r#"userName gt "a""#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        "loginCount ge 3",
        "active eq true",
        "active ne false",
        r#"emails eq "a""#,
        r#"emails co "a""#,
        "active pr",
        r#"x509Certificates.value eq "M""#,
        r#"emails[value gt "a"]"#,
        r#"nosuch gt "a""#,
    ] {
        assert!(validate(&p(f), &TestSchema).is_ok(), "{f}");
    }
    assert!(validate(&p(r#"active gt "a""#), &NoSchema).is_ok());
}

#[test]
fn validate_rejects_nested_value_paths() {
    let nested = Filter::ValuePath {
        path: path("emails"),
        filter: Box::new(Filter::ValuePath { path: path("inner"), filter: Box::new(pr("x")) }),
    };
    let e = validate(&nested, &TestSchema).expect_err("nested");
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
    assert!(!matches(&nested, &user(), &TestSchema));
}

// ---- PATCH paths ----

fn pp(input: &str) -> PatchPath {
    match parse_patch_path(input) {
        Ok(pp) => pp,
        Err(e) => panic!("{input:?} should parse: {e}"),
    }
}

#[test]
fn patch_paths_from_rfc7644() {
    assert_eq!(pp("members"), PatchPath { path: path("members"), filter: None, sub: None });
    assert_eq!(pp("name.familyName"), PatchPath { path: sub_path("name", "familyName"), filter: None, sub: None });
    assert_eq!(
        pp(r#"addresses[type eq "work"]"#),
        PatchPath { path: path("addresses"), filter: Some(cmp(path("type"), CompareOp::Eq, json!("work"))), sub: None }
    );
    assert_eq!(
        pp(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#),
        PatchPath {
            path: path("members"),
            filter: Some(cmp(path("value"), CompareOp::Eq, json!(BJENSEN_ID))),
            sub: None
        }
    );
    assert_eq!(
        pp(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#),
        PatchPath {
            path: path("members"),
            filter: Some(cmp(path("value"), CompareOp::Eq, json!(BJENSEN_ID))),
            sub: Some("displayName".into())
        }
    );
    assert_eq!(
        pp(r#"emails[type eq "work" and value ew "example.com"]"#),
        PatchPath {
            path: path("emails"),
            filter: Some(and(
                cmp(path("type"), CompareOp::Eq, json!("work")),
                cmp(path("value"), CompareOp::Ew, json!("example.com"))
            )),
            sub: None
        }
    );
    assert_eq!(
        pp(r#"addresses[type eq "work"].streetAddress"#),
        PatchPath {
            path: path("addresses"),
            filter: Some(cmp(path("type"), CompareOp::Eq, json!("work"))),
            sub: Some("streetAddress".into())
        }
    );
    let x509 = pp(r#"x509certificates[value eq "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"]"#);
    assert_eq!(x509.path, path("x509certificates"));
    assert!(x509.filter.is_some());
}

#[test]
fn patch_paths_from_identity_providers() {
    assert_eq!(
        pp(r#"emails[type eq "work"].value"#),
        PatchPath {
            path: path("emails"),
            filter: Some(cmp(path("type"), CompareOp::Eq, json!("work"))),
            sub: Some("value".into())
        }
    );
    assert_eq!(
        pp(&format!("{ENT}:manager")),
        PatchPath {
            path: AttrPath { uri: Some(ENT.into()), attr: "manager".into(), sub: None },
            filter: None,
            sub: None
        }
    );
    assert_eq!(
        pp(&format!("{ENT}:manager.value")).path,
        AttrPath { uri: Some(ENT.into()), attr: "manager".into(), sub: Some("value".into()) }
    );
    assert_eq!(
        pp("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:CustomAttribute").path,
        AttrPath {
            uri: Some("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User".into()),
            attr: "CustomAttribute".into(),
            sub: None
        }
    );
    assert_eq!(pp("name.givenName").path, sub_path("name", "givenName"));
    assert_eq!(pp(&format!("{CORE_USER}:userName")).path.uri.as_deref(), Some(CORE_USER));
    // Case and surrounding whitespace are kept / tolerated.
    let mixed = pp(r#"  Members[Value EQ "x" OR display co y] "#);
    assert_eq!(mixed.path, path("Members"));
    assert_eq!(
        mixed.filter,
        Some(or(cmp(path("Value"), CompareOp::Eq, json!("x")), cmp(path("display"), CompareOp::Co, json!("y"))))
    );
    // Brackets inside quoted values do not end the filter.
    assert_eq!(pp(r#"members[value eq "a]b[c"]"#).filter, Some(cmp(path("value"), CompareOp::Eq, json!("a]b[c"))));
    assert_eq!(pp(&format!(r#"{ENT}:manager[value pr]"#)).path.uri.as_deref(), Some(ENT));
}

#[test]
fn rejects_malformed_patch_paths() {
    for (input, detail) in [
        ("", "empty"),
        ("   ", "empty"),
        ("members[", "unexpected end"),
        (r#"members[value eq "x""#, "missing ']'"),
        (r#"members[value eq "x"]]"#, "unexpected ']'"),
        (r#"members[value eq "x"]extra"#, "unexpected 'extra'"),
        (r#"members[value eq "x"]."#, "invalid sub-attribute"),
        (r#"members[value eq "x"].a.b"#, "invalid sub-attribute"),
        (r#"members[value eq "x"].1a"#, "invalid sub-attribute"),
        (r#"members[value eq "x"].display extra"#, "unexpected 'extra'"),
        ("name.familyName.x", "invalid sub-attribute"),
        ("name.", "invalid sub-attribute"),
        ("9abc", "invalid attribute name"),
        ("a b", "unexpected 'b'"),
        (r#"emails[type eq "work"][primary eq true]"#, "unexpected '['"),
        (r#"emails[type[x eq 1] eq "a"]"#, "nested value filter"),
        ("members value", "unexpected 'value'"),
        (r#"name.familyName[type eq "x"]"#, "cannot follow the sub-attribute"),
        ("members[]", "unexpected ']'"),
        ("members[value eq]", "missing value"),
        (r#"members[value eq "x]"#, "unterminated string"),
        (r#"members[value xx "x"]"#, "unknown operator"),
        ("urn:ietf::User:x", "invalid schema URN"),
        (&format!("{ENT}:"), "missing attribute name"),
        ("(members)", "unexpected '('"),
        (r#""members""#, "unexpected string"),
        (".members", "unexpected '.members'"),
        ("members)", "unexpected ')'"),
    ] {
        let e = path_err(input);
        assert!(e.detail.contains(detail), "{input:?}: {:?} lacks {detail:?}", e.detail);
    }
    assert!(path_err(&"a".repeat(MAX_FILTER_LEN + 1)).detail.contains("longer than"));
    assert!(parse_patch_path(&"a".repeat(MAX_FILTER_LEN)).is_ok());
    let deep = format!("members[{}a pr{}]", "(".repeat(100), ")".repeat(100));
    assert!(path_err(&deep).detail.contains("nesting deeper"));
}

#[test]
fn patch_path_filter_matches_elements() {
    let u = user();
    let emails = u["emails"].as_array().cloned().unwrap_or_default();
    let selected = |path: &str| {
        let pp = pp(path);
        let filter = pp.filter.unwrap_or(Filter::Present(AttrPath::simple("value")));
        emails
            .iter()
            .filter(|e| matches_value(&filter, e, pp.path.uri.as_deref(), &pp.path.attr, &TestSchema))
            .filter_map(|e| e["value"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(selected(r#"emails[type eq "work" and value ew "EXAMPLE.com"]"#), ["bjensen@example.com"]);
    assert_eq!(selected(r#"emails[type ne "work"]"#), ["babs@jensen.org"]);
    assert_eq!(selected(r#"emails[primary pr or type eq "home"]"#).len(), 2);
    assert!(selected(r#"emails[type eq "other"]"#).is_empty());
    assert!(!matches_value(&pr("value"), &json!("x"), None, "emails", &TestSchema));
    // The schema is asked about the element's sub-attributes.
    let s = RecordingSchema::default();
    let filter = p(r#"value eq "x""#);
    matches_value(&filter, &json!({"value": "x"}), Some(ENT), "manager", &s);
    assert!(s.asked().contains(&key(Some(ENT), "manager", Some("value"))));
}
