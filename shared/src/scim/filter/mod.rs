//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
//!
//! A small tokenizer feeds a hand-written recursive-descent parser producing a [`Filter`] tree;
//! [`matches`] evaluates a tree against a JSON resource and [`validate`] checks it against the
//! schema. Every malformed input yields `400 invalidFilter` (filters) or `400 invalidPath`
//! (PATCH paths); nothing here panics on any input.
//!
//! Grammar accepted (RFC 7644 figure 1, plus the leniencies noted):
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]" [ "." subAttr compareOp compValue / "." subAttr "pr" ]
//! attrExp   = attrPath SP "pr" / attrPath SP compareOp SP compValue
//! compValue = false / null / true / number / string / bareWord      ; bareWord: Entra leniency
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! PATH      = attrPath / valuePath [subAttr]                         ; PATCH
//! ```
//!
//! Precedence is `not` > `and` > `or`; `and`/`or` are left-associative. Keywords, operators and
//! `true`/`false`/`null` are case-insensitive; any run of ASCII whitespace separates tokens.
//!
//! Semantic choices of the evaluator (see [`matches`]):
//! - `ne` is `not (eq)`: true when the attribute is absent, or when no value of a multi-valued
//!   attribute equals the operand.
//! - `eq null` is `not (pr)` and `ne null` is `pr`.
//! - `pr` is true for a value that is not null, not `""`, and (for arrays and objects) has at least
//!   one present member.
//! - A comparison on a multi-valued attribute is true when any value satisfies it; elements that
//!   are objects are compared through their `value` sub-attribute.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde_json::{Map, Number, Value};

use super::schema::Type;
use crate::error::{ScimError, ScimResult, ScimType};

mod eval;
mod lex;
mod parse;
mod validate;

use eval::*;
use lex::*;
use parse::*;
use validate::*;

/// Longest filter or PATCH path accepted, in characters.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of `(`, `not (` and `[` accepted.
pub const MAX_FILTER_DEPTH: usize = 64;

/// Prefix of the core schema URNs (`…:core:2.0:User`, `…:core:2.0:Group`).
const CORE_URN_PREFIX: &str = "urn:ietf:params:scim:schemas:core:";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// A (possibly URN-qualified) attribute reference: `userName`, `name.givenName`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`,
/// `urn:ietf:params:scim:schemas:core:2.0:User:userName` (core URN: uri is Some(core urn)).
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub uri: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// An unqualified attribute without sub-attribute.
    pub fn simple(attr: impl Into<String>) -> Self {
        Self { uri: None, attr: attr.into(), sub: None }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator spelled `word` (case-insensitive); `pr` is not a comparison.
    pub fn from_keyword(word: &str) -> Option<Self> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter().find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// `gt`, `ge`, `lt`, `le`.
    pub fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    }, // value: String/Number/Bool/Null
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@x"]`; the inner filter's paths are relative to the attribute's elements.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// Canonical filter text; parsing it yields an equal tree.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn child(f: &mut fmt::Formatter<'_>, c: &Filter, paren: bool) -> fmt::Result {
            if paren { write!(f, "({c})") } else { write!(f, "{c}") }
        }
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(a, b) => {
                child(f, a, matches!(**a, Filter::Or(..)))?;
                f.write_str(" and ")?;
                child(f, b, matches!(**b, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Or(a, b) => {
                child(f, a, false)?;
                f.write_str(" or ")?;
                child(f, b, matches!(**b, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

/// What the evaluator needs to know about the schema. Attribute names given here are as written in
/// the filter (any case); the implementation (written elsewhere) resolves them case-insensitively.
pub trait AttrSchema {
    /// true when string comparisons on this attribute are case-sensitive (RFC 7643 caseExact).
    fn case_exact(&self, uri: Option<&str>, attr: &str, sub: Option<&str>) -> bool;
    fn kind(&self, uri: Option<&str>, attr: &str, sub: Option<&str>) -> AttrKind;
}

/// An attribute's RFC 7643 type as the schema knows it; `None` for an attribute it does not hold.
pub type AttrKind = Option<super::schema::Type>;

/// The type's name in errors (`"unknown"` for `None`).
pub fn kind_name(kind: AttrKind) -> &'static str {
    kind.map_or("unknown", super::schema::type_name)
}

/// PATCH path: `members`, `name.familyName`, `members[value eq "2819c223"]`, `emails[type eq "work"].value`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, `urn:...:enterprise:2.0:User:manager.value`,
/// `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:CustomAttribute`.
///
/// `path.sub` is the sub-attribute of a plain attribute path (`name.familyName`); `sub` is the one
/// after a value filter (`emails[type eq "work"].value`). The two never both occur.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub path: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Public functions
// ---------------------------------------------------------------------------------------------

/// Parses a filter (the `filter` query parameter or the body of a `.search` request).
/// Errors: 400 invalidFilter.
pub fn parse(input: &str) -> ScimResult<Filter> {
    parse_filter(input).map_err(|detail| ScimError::bad_request(ScimType::InvalidFilter, detail))
}

/// Parses a PATCH operation's `path`. Errors: 400 invalidPath.
pub fn parse_patch_path(input: &str) -> ScimResult<PatchPath> {
    parse_path(input).map_err(|detail| ScimError::bad_request(ScimType::InvalidPath, detail))
}

/// Parses a bare attribute path (`userName`, `name.givenName`, `urn:…:User:manager.value`).
/// Errors: 400 invalidPath (callers using it for other parameters may re-map the `scimType`).
pub fn parse_attr_path(input: &str) -> ScimResult<AttrPath> {
    attr_path_from(input.trim()).map_err(ScimError::invalid_path)
}

/// Split a possibly URN-qualified attribute name into (uri, rest). A URN is recognised as everything up to
/// the last ':' when the string starts with "urn:" (case-insensitive). `rest` may contain a dotted sub-attribute.
pub fn split_urn(name: &str) -> (Option<&str>, &str) {
    let is_urn = name.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    if is_urn && let Some(i) = name.rfind(':') {
        return (Some(&name[..i]), &name[i + 1..]);
    }
    (None, name)
}

/// Static checks against the schema: gt/ge/lt/le on Boolean or Binary or Complex -> invalidFilter (RFC 7644 says so);
/// gt/ge/lt/le with a `true`/`false`/`null` operand -> invalidFilter; value paths nested in value paths
/// (only constructible by hand) -> invalidFilter.
pub fn validate(filter: &Filter, schema: &dyn AttrSchema) -> ScimResult<()> {
    validate_in(filter, schema, Scope::Root)
}

/// Evaluates `filter` against a resource's JSON representation.
///
/// Attribute names are matched case-insensitively. A URN-qualified path whose URN is a core schema
/// (`urn:ietf:params:scim:schemas:core:…`) listed in the resource's `schemas` (or any core URN when
/// the resource has no `schemas`) is looked up at the top level; any other URN selects the
/// top-level object keyed by that URN. See the module documentation for `ne`, `null` and `pr`.
pub fn matches(filter: &Filter, resource: &Value, schema: &dyn AttrSchema) -> bool {
    eval(filter, resource, Scope::Root, schema)
}

/// Evaluates a value filter (the inside of `attr[...]`, e.g. a [`PatchPath::filter`]) against one
/// element of the multi-valued attribute `attr` of schema `uri` (`None` for the core schema). The
/// filter's paths name the element's sub-attributes; the schema is asked about
/// `(uri, attr, Some(sub))`. Elements that are not objects match nothing.
pub fn matches_value(filter: &Filter, element: &Value, uri: Option<&str>, attr: &str, schema: &dyn AttrSchema) -> bool {
    element.is_object() && eval(filter, element, Scope::Elem { uri, parent: attr }, schema)
}

#[cfg(test)]
#[path = "../filter_tests.rs"]
mod tests;
