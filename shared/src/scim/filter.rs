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

use crate::error::{ScimError, ScimResult, ScimType};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
    Unknown,
}

impl AttrKind {
    /// The RFC 7643 §2.3 type name (`"unknown"` for [`AttrKind::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            AttrKind::String => "string",
            AttrKind::Boolean => "boolean",
            AttrKind::Decimal => "decimal",
            AttrKind::Integer => "integer",
            AttrKind::DateTime => "dateTime",
            AttrKind::Binary => "binary",
            AttrKind::Reference => "reference",
            AttrKind::Complex => "complex",
            AttrKind::Unknown => "unknown",
        }
    }
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

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

type PResult<T> = Result<T, String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A decoded JSON string literal.
    Str(String),
    /// Any other run of characters: attribute path, keyword, operator, number or bare value.
    Word(&'a str),
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset in the input.
    pos: usize,
}

/// 1-based character position of byte offset `byte`, for messages.
fn position(input: &str, byte: usize) -> usize {
    input.get(..byte).map_or(byte, |s| s.chars().count()) + 1
}

/// `s`, shortened for an error message.
fn snippet(s: &str) -> Cow<'_, str> {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Str(s) => format!("string \"{}\"", snippet(s)),
        Tok::Word(w) => format!("'{}'", snippet(w)),
    }
}

fn is_word_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && !matches!(b, b'(' | b')' | b'[' | b']' | b'"')
}

fn lex(input: &str) -> PResult<Vec<Token<'_>>> {
    let bytes = input.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let single = match b {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            _ => None,
        };
        if let Some(tok) = single {
            toks.push(Token { tok, pos: i });
            i += 1;
        } else if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b'"' {
            let (s, end) = lex_string(input, i)?;
            toks.push(Token { tok: Tok::Str(s), pos: i });
            i = end;
        } else {
            let start = i;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            // Stop bytes are ASCII, so `start..i` lies on char boundaries.
            toks.push(Token { tok: Tok::Word(&input[start..i]), pos: start });
        }
    }
    Ok(toks)
}

/// Decodes the JSON string literal whose opening quote is at byte `start`; returns the string and
/// the byte offset just past the closing quote.
fn lex_string(input: &str, start: usize) -> PResult<(String, usize)> {
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut i = start + 1;
    let mut seg = i;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(format!("unterminated string starting at position {}", position(input, start)));
        };
        match b {
            b'"' => {
                out.push_str(&input[seg..i]);
                return Ok((out, i + 1));
            }
            b'\\' => {
                out.push_str(&input[seg..i]);
                let esc_pos = i;
                let bad_escape =
                    || format!("invalid escape sequence in string at position {}", position(input, esc_pos));
                i += 1;
                match bytes.get(i) {
                    Some(b'"') => out.push('"'),
                    Some(b'\\') => out.push('\\'),
                    Some(b'/') => out.push('/'),
                    Some(b'b') => out.push('\u{8}'),
                    Some(b'f') => out.push('\u{c}'),
                    Some(b'n') => out.push('\n'),
                    Some(b'r') => out.push('\r'),
                    Some(b't') => out.push('\t'),
                    Some(b'u') => {
                        let hi = hex4(input, i + 1).ok_or_else(bad_escape)?;
                        i += 4;
                        let code = if (0xD800..0xDC00).contains(&hi) {
                            // High surrogate: a `\uDC00`–`\uDFFF` must follow.
                            let lo = (bytes.get(i + 1) == Some(&b'\\') && bytes.get(i + 2) == Some(&b'u'))
                                .then(|| hex4(input, i + 3))
                                .flatten()
                                .filter(|lo| (0xDC00..0xE000).contains(lo))
                                .ok_or_else(bad_escape)?;
                            i += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            hi
                        };
                        out.push(char::from_u32(code).ok_or_else(bad_escape)?);
                    }
                    _ => return Err(bad_escape()),
                }
                i += 1;
                seg = i;
            }
            _ => i += 1,
        }
    }
}

/// Four hex digits at byte `at`.
fn hex4(input: &str, at: usize) -> Option<u32> {
    let digits = input.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

// ---------------------------------------------------------------------------------------------
// Attribute paths
// ---------------------------------------------------------------------------------------------

/// ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA; also `$ref`.
fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `urn:` followed by non-empty segments of letters, digits, `.`, `-`, `_`.
fn is_schema_urn(uri: &str) -> bool {
    uri.split(':').count() >= 2
        && uri.split(':').all(|seg| {
            !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        })
}

fn attr_path_from(s: &str) -> PResult<AttrPath> {
    if s.is_empty() {
        return Err("missing attribute name".into());
    }
    let (uri, rest) = split_urn(s);
    if let Some(u) = uri
        && !is_schema_urn(u)
    {
        return Err(format!("invalid schema URN '{}'", snippet(u)));
    }
    if rest.is_empty() {
        return Err(format!("missing attribute name after schema URN in '{}'", snippet(s)));
    }
    let (attr, sub) = match rest.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    if !is_attr_name(attr) {
        return Err(format!("invalid attribute name '{}'", snippet(attr)));
    }
    if let Some(sub) = sub
        && !is_attr_name(sub)
    {
        return Err(format!("invalid sub-attribute name '{}' in '{}'", snippet(sub), snippet(s)));
    }
    Ok(AttrPath { uri: uri.map(str::to_owned), attr: attr.to_owned(), sub: sub.map(str::to_owned) })
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

fn check_len(input: &str, what: &str) -> PResult<()> {
    if input.len() > MAX_FILTER_LEN && input.chars().count() > MAX_FILTER_LEN {
        return Err(format!("{what} is longer than {MAX_FILTER_LEN} characters"));
    }
    Ok(())
}

fn parse_filter(input: &str) -> PResult<Filter> {
    check_len(input, "filter")?;
    let mut p = Parser::new(input)?;
    if p.peek().is_none() {
        return Err("filter is empty".into());
    }
    let filter = p.parse_or(false)?;
    match p.peek() {
        None => Ok(filter),
        Some(Tok::RParen) => Err(format!("unbalanced ')' at position {}", p.position())),
        Some(Tok::RBracket) => Err(format!("unbalanced ']' at position {}", p.position())),
        Some(t) => Err(format!(
            "unexpected {} at position {}: expected 'and', 'or' or end of filter",
            describe(t),
            p.position()
        )),
    }
}

fn parse_path(input: &str) -> PResult<PatchPath> {
    check_len(input, "path")?;
    let mut p = Parser::new(input)?;
    let (word, pos) = match p.peek() {
        None => return Err("path is empty".into()),
        Some(Tok::Word(w)) if !w.starts_with('.') => (*w, p.pos()),
        Some(t) => {
            return Err(format!("unexpected {} at position {}: expected an attribute name", describe(t), p.position()));
        }
    };
    p.bump();
    let path = p.attr_path(word, pos, false)?;
    let mut filter = None;
    let mut sub = None;
    if p.peek() == Some(&Tok::LBracket) {
        if path.sub.is_some() {
            return Err(format!("a value filter cannot follow the sub-attribute in '{}'", snippet(word)));
        }
        filter = Some(p.parse_bracket()?);
        if let Some(Tok::Word(w)) = p.peek()
            && let Some(name) = w.strip_prefix('.')
        {
            if !is_attr_name(name) {
                return Err(format!("invalid sub-attribute name '{}' at position {}", snippet(name), p.position()));
            }
            sub = Some(name.to_owned());
            p.bump();
        }
    }
    match p.peek() {
        None => Ok(PatchPath { path, filter, sub }),
        Some(t) => Err(format!("unexpected {} at position {}: expected end of path", describe(t), p.position())),
    }
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token<'a>>,
    i: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> PResult<Self> {
        Ok(Self { input, toks: lex(input)?, i: 0, depth: 0 })
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn peek2(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.i + 1).map(|t| &t.tok)
    }

    fn bump(&mut self) {
        self.i += 1;
    }

    /// Byte offset of the current token (input length at the end).
    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.input.len(), |t| t.pos)
    }

    /// 1-based character position of the current token.
    fn position(&self) -> usize {
        position(self.input, self.pos())
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(format!("nesting deeper than {MAX_FILTER_DEPTH} levels at position {}", self.position()));
        }
        Ok(())
    }

    fn attr_path(&self, word: &str, pos: usize, in_value_path: bool) -> PResult<AttrPath> {
        let path = attr_path_from(word).map_err(|e| format!("{e} at position {}", position(self.input, pos)))?;
        if in_value_path && (path.uri.is_some() || path.sub.is_some()) {
            return Err(format!(
                "'{}' at position {} must be a plain sub-attribute name inside a value filter",
                snippet(word),
                position(self.input, pos)
            ));
        }
        Ok(path)
    }

    /// orExp = andExp *("or" andExp)
    fn parse_or(&mut self, in_vp: bool) -> PResult<Filter> {
        let mut left = self.parse_and(in_vp)?;
        while self.is_keyword("or") {
            self.bump();
            let right = self.parse_and(in_vp)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// andExp = unary *("and" unary)
    fn parse_and(&mut self, in_vp: bool) -> PResult<Filter> {
        let mut left = self.parse_unary(in_vp)?;
        while self.is_keyword("and") {
            self.bump();
            let right = self.parse_unary(in_vp)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// unary = "not" "(" orExp ")" / "(" orExp ")" / attrExp / valuePath
    fn parse_unary(&mut self, in_vp: bool) -> PResult<Filter> {
        match self.peek() {
            None => Err(format!(
                "unexpected end of filter at position {}: expected an attribute, '(' or 'not'",
                self.position()
            )),
            Some(Tok::LParen) => self.parse_group(in_vp),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => {
                match self.peek2() {
                    Some(Tok::LParen) => {
                        self.bump();
                        Ok(Filter::Not(Box::new(self.parse_group(in_vp)?)))
                    }
                    // `not pr`, `not eq "x"`: an attribute that happens to be called "not".
                    Some(Tok::Word(op)) if op.eq_ignore_ascii_case("pr") || CompareOp::from_keyword(op).is_some() => {
                        self.parse_attr_expr(in_vp)
                    }
                    _ => Err(format!(
                        "'not' at position {} must be followed by a parenthesized filter: not (...)",
                        self.position()
                    )),
                }
            }
            Some(Tok::Word(_)) => self.parse_attr_expr(in_vp),
            Some(t) => Err(format!(
                "unexpected {} at position {}: expected an attribute, '(' or 'not'",
                describe(t),
                self.position()
            )),
        }
    }

    /// "(" orExp ")", the current token being "(".
    fn parse_group(&mut self, in_vp: bool) -> PResult<Filter> {
        let open = self.position();
        self.enter()?;
        self.bump();
        let inner = self.parse_or(in_vp)?;
        match self.peek() {
            Some(Tok::RParen) => {
                self.bump();
                self.depth -= 1;
                Ok(inner)
            }
            None => Err(format!("missing ')' to close '(' at position {open}")),
            Some(t) => {
                Err(format!("unexpected {} at position {}: expected 'and', 'or' or ')'", describe(t), self.position()))
            }
        }
    }

    /// "[" valFilter "]", the current token being "[".
    fn parse_bracket(&mut self) -> PResult<Filter> {
        let open = self.position();
        self.enter()?;
        self.bump();
        let inner = self.parse_or(true)?;
        match self.peek() {
            Some(Tok::RBracket) => {
                self.bump();
                self.depth -= 1;
                Ok(inner)
            }
            None => Err(format!("missing ']' to close '[' at position {open}")),
            Some(t) => {
                Err(format!("unexpected {} at position {}: expected 'and', 'or' or ']'", describe(t), self.position()))
            }
        }
    }

    /// attrPath followed by `pr`, an operator and value, or a value filter; the current token
    /// is the attribute path word.
    fn parse_attr_expr(&mut self, in_vp: bool) -> PResult<Filter> {
        let pos = self.pos();
        let word: &'a str = match self.peek() {
            Some(Tok::Word(word)) => word,
            _ => {
                return Err(format!("expected an attribute at position {}", self.position()));
            }
        };
        let path = self.attr_path(word, pos, in_vp)?;
        self.bump();
        if self.peek() != Some(&Tok::LBracket) {
            return self.parse_op_value(path);
        }
        if in_vp {
            return Err(format!(
                "nested value filter at position {}: a value filter cannot contain another",
                self.position()
            ));
        }
        if path.sub.is_some() {
            return Err(format!(
                "a value filter cannot follow the sub-attribute in '{}' at position {}",
                snippet(word),
                position(self.input, pos)
            ));
        }
        let inner = self.parse_bracket()?;
        // Entra ID: `emails[type eq "work"].value eq "x"` filters on a sub-attribute of the
        // selected elements; it means `emails[type eq "work" and value eq "x"]`.
        if let Some(Tok::Word(w)) = self.peek()
            && let Some(name) = w.strip_prefix('.')
        {
            if !is_attr_name(name) {
                return Err(format!("invalid sub-attribute name '{}' at position {}", snippet(name), self.position()));
            }
            let sub = AttrPath::simple(name);
            self.bump();
            let cond = self.parse_op_value(sub)?;
            return Ok(Filter::ValuePath { path, filter: Box::new(Filter::And(Box::new(inner), Box::new(cond))) });
        }
        Ok(Filter::ValuePath { path, filter: Box::new(inner) })
    }

    /// `pr` or compareOp compValue after `path`.
    fn parse_op_value(&mut self, path: AttrPath) -> PResult<Filter> {
        let op = match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                self.bump();
                return Ok(Filter::Present(path));
            }
            Some(Tok::Word(w)) => match CompareOp::from_keyword(w) {
                Some(op) => op,
                None => {
                    return Err(format!(
                        "unknown operator '{}' at position {}: expected one of eq, ne, co, sw, ew, gt, ge, lt, le, pr",
                        snippet(w),
                        self.position()
                    ));
                }
            },
            None => {
                return Err(format!("missing operator after attribute '{path}' at position {}", self.position()));
            }
            Some(t) => {
                return Err(format!(
                    "unexpected {} at position {}: expected an operator after attribute '{path}'",
                    describe(t),
                    self.position()
                ));
            }
        };
        self.bump();
        let value = match self.peek() {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Word(w)) if !w.eq_ignore_ascii_case("and") && !w.eq_ignore_ascii_case("or") => word_value(w),
            _ => {
                return Err(format!("missing value after operator '{op}' at position {}", self.position()));
            }
        };
        self.bump();
        Ok(Filter::Compare { path, op, value })
    }
}

/// An unquoted comparison value: `true`/`false`/`null` (any case), a JSON number, or else (Entra
/// ID leniency: `externalId eq jyoung`) the word itself as a string.
fn word_value(w: &str) -> Value {
    if w.eq_ignore_ascii_case("true") {
        Value::Bool(true)
    } else if w.eq_ignore_ascii_case("false") {
        Value::Bool(false)
    } else if w.eq_ignore_ascii_case("null") {
        Value::Null
    } else {
        parse_number(w).map_or_else(|| Value::String(w.to_owned()), Value::Number)
    }
}

/// A JSON number (`-1`, `2.5e3`); `None` for anything else, including `007` and `1e999`.
fn parse_number(s: &str) -> Option<Number> {
    let first = s.bytes().next()?;
    if first != b'-' && !first.is_ascii_digit() {
        return None;
    }
    serde_json::from_str::<Number>(s).ok()
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Where a path is evaluated: at the resource's top level, or inside an element of the
/// (possibly URN-qualified) attribute `parent` of a value filter.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Root,
    Elem { uri: Option<&'a str>, parent: &'a str },
}

/// The (uri, attr, sub) triple the schema is asked about.
fn schema_key<'a>(path: &'a AttrPath, scope: Scope<'a>) -> (Option<&'a str>, &'a str, Option<&'a str>) {
    match scope {
        Scope::Root => (path.uri.as_deref(), &path.attr, path.sub.as_deref()),
        Scope::Elem { uri, parent } => (uri, parent, Some(&path.attr)),
    }
}

fn display_path(path: &AttrPath, scope: Scope<'_>) -> String {
    match scope {
        Scope::Root => path.to_string(),
        Scope::Elem { parent, .. } => format!("{parent}.{path}"),
    }
}

fn validate_in(filter: &Filter, schema: &dyn AttrSchema, scope: Scope<'_>) -> ScimResult<()> {
    match filter {
        Filter::Compare { path, op, value } => {
            if op.is_ordering() {
                if matches!(value, Value::Bool(_) | Value::Null) {
                    return Err(ScimError::invalid_filter(format!(
                        "operator '{op}' on '{}' needs a string, number or dateTime value, not {value}",
                        display_path(path, scope)
                    )));
                }
                let (uri, attr, sub) = schema_key(path, scope);
                let kind = schema.kind(uri, attr, sub);
                if matches!(kind, AttrKind::Boolean | AttrKind::Binary | AttrKind::Complex) {
                    return Err(ScimError::invalid_filter(format!(
                        "operator '{op}' is not supported on {} attribute '{}'",
                        kind.as_str(),
                        display_path(path, scope)
                    )));
                }
            }
            Ok(())
        }
        Filter::Present(_) => Ok(()),
        Filter::And(a, b) | Filter::Or(a, b) => {
            validate_in(a, schema, scope)?;
            validate_in(b, schema, scope)
        }
        Filter::Not(inner) => validate_in(inner, schema, scope),
        Filter::ValuePath { path, filter } => match scope {
            Scope::Elem { .. } => Err(ScimError::invalid_filter(format!(
                "nested value filter on '{}' is not supported",
                display_path(path, scope)
            ))),
            Scope::Root if path.sub.is_some() => {
                Err(ScimError::invalid_filter(format!("a value filter cannot follow the sub-attribute in '{path}'")))
            }
            Scope::Root => validate_in(filter, schema, Scope::Elem { uri: path.uri.as_deref(), parent: &path.attr }),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// `obj[key]`, the key matched exactly first, then ASCII-case-insensitively.
fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The object holding the attributes of schema `uri` in `resource`.
fn container<'v>(resource: &'v Value, uri: Option<&str>) -> Option<&'v Map<String, Value>> {
    let root = resource.as_object()?;
    let Some(uri) = uri else { return Some(root) };
    let is_core = uri.get(..CORE_URN_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(CORE_URN_PREFIX))
        && match get_ci(root, "schemas") {
            Some(Value::Array(schemas)) => {
                schemas.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(uri)))
            }
            _ => true,
        };
    if is_core { Some(root) } else { get_ci(root, uri)?.as_object() }
}

/// The value of `path.attr` (not yet its sub-attribute) as seen from `node` in `scope`.
fn lookup<'v>(node: &'v Value, path: &AttrPath, scope: Scope<'_>) -> Option<&'v Value> {
    let obj = match scope {
        Scope::Root => container(node, path.uri.as_deref())?,
        Scope::Elem { .. } => node.as_object()?,
    };
    get_ci(obj, &path.attr)
}

/// Not null, not `""`, and for arrays and objects at least one present member.
fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// A value to compare, and whether it was reached through an element's implied `value`.
type Candidate<'v> = (&'v Value, bool);

fn push_flat<'v>(v: &'v Value, out: &mut Vec<Candidate<'v>>) {
    match v {
        Value::Array(a) => out.extend(a.iter().filter(|e| !e.is_array()).map(|e| (e, false))),
        _ => out.push((v, false)),
    }
}

/// The scalar values an attribute value `v` offers to a comparison: its sub-attribute `sub` (of
/// the object or of every element), or else the value itself, every element, and for objects
/// their `value` sub-attribute.
fn candidates<'v>(v: &'v Value, sub: Option<&str>, out: &mut Vec<Candidate<'v>>) {
    match (v, sub) {
        (Value::Object(o), Some(s)) => {
            if let Some(x) = get_ci(o, s) {
                push_flat(x, out);
            }
        }
        (Value::Array(a), Some(s)) => {
            for x in a.iter().filter_map(|e| e.as_object().and_then(|o| get_ci(o, s))) {
                push_flat(x, out);
            }
        }
        (_, Some(_)) => {}
        (Value::Array(a), None) => {
            for e in a {
                match e {
                    Value::Object(o) => {
                        if let Some(x) = get_ci(o, "value") {
                            out.push((x, true));
                        }
                    }
                    Value::Array(_) => {}
                    _ => out.push((e, false)),
                }
            }
        }
        (Value::Object(o), None) => {
            if let Some(x) = get_ci(o, "value") {
                out.push((x, true));
            }
        }
        (_, None) => out.push((v, false)),
    }
}

fn eval<'f>(filter: &'f Filter, node: &Value, scope: Scope<'f>, schema: &dyn AttrSchema) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, node, scope, schema) && eval(b, node, scope, schema),
        Filter::Or(a, b) => eval(a, node, scope, schema) || eval(b, node, scope, schema),
        Filter::Not(inner) => !eval(inner, node, scope, schema),
        Filter::Present(path) => present(node, path, scope),
        Filter::Compare { path, op, value } => eval_compare(node, path, *op, value, scope, schema),
        Filter::ValuePath { path, filter } => {
            // Value filters do not nest.
            let Scope::Root = scope else { return false };
            let Some(v) = lookup(node, path, scope) else {
                return false;
            };
            let inner = Scope::Elem { uri: path.uri.as_deref(), parent: &path.attr };
            match v {
                Value::Array(a) => a.iter().any(|e| e.is_object() && eval(filter, e, inner, schema)),
                Value::Object(_) => eval(filter, v, inner, schema),
                _ => false,
            }
        }
    }
}

fn present(node: &Value, path: &AttrPath, scope: Scope<'_>) -> bool {
    let Some(v) = lookup(node, path, scope) else {
        return false;
    };
    match path.sub.as_deref() {
        None => is_present(v),
        Some(sub) => {
            let mut out = Vec::new();
            candidates(v, Some(sub), &mut out);
            out.iter().any(|(c, _)| is_present(c))
        }
    }
}

fn eval_compare(
    node: &Value,
    path: &AttrPath,
    op: CompareOp,
    operand: &Value,
    scope: Scope<'_>,
    schema: &dyn AttrSchema,
) -> bool {
    if operand.is_null() {
        // `eq null` is "has no value"; `ne null` is "has a value".
        return match op {
            CompareOp::Eq => !present(node, path, scope),
            CompareOp::Ne => present(node, path, scope),
            _ => false,
        };
    }
    let Some(v) = lookup(node, path, scope) else {
        return op == CompareOp::Ne;
    };
    let mut cands = Vec::new();
    candidates(v, path.sub.as_deref(), &mut cands);

    let (uri, attr, sub) = schema_key(path, scope);
    let info = |sub: Option<&str>| {
        let mut kind = schema.kind(uri, attr, sub);
        let is_meta_time = matches!(scope, Scope::Root)
            && attr.eq_ignore_ascii_case("meta")
            && sub.is_some_and(|s| s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified"));
        if is_meta_time && matches!(kind, AttrKind::String | AttrKind::Unknown) {
            kind = AttrKind::DateTime;
        }
        (schema.case_exact(uri, attr, sub), kind)
    };
    let direct = info(sub);
    // Elements reached through their implied `value`: ask the schema about `attr.value`.
    let implied = if sub.is_none() && cands.iter().any(|(_, implied)| *implied) { info(Some("value")) } else { direct };
    let test_op = if op == CompareOp::Ne { CompareOp::Eq } else { op };
    let hit = cands.iter().any(|&(c, via_value)| {
        let (case_exact, kind) = if via_value { implied } else { direct };
        compare_one(c, test_op, operand, case_exact, kind)
    });
    if op == CompareOp::Ne { !hit } else { hit }
}

fn ordering_holds(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn is_substring_op(op: CompareOp) -> bool {
    matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
}

fn fold(s: &str, case_exact: bool) -> Cow<'_, str> {
    super::text::fold(s, case_exact)
}

fn text_op(op: CompareOp, a: &str, b: &str, case_exact: bool) -> bool {
    let (a, b) = (fold(a, case_exact), fold(b, case_exact));
    match op {
        CompareOp::Co => a.contains(b.as_ref()),
        CompareOp::Sw => a.starts_with(b.as_ref()),
        CompareOp::Ew => a.ends_with(b.as_ref()),
        _ => ordering_holds(op, a.cmp(&b)),
    }
}

fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    fn int(n: &Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn num_op(op: CompareOp, a: &Number, b: &Number) -> bool {
    num_cmp(a, b).is_some_and(|ord| ordering_holds(op, ord))
}

/// RFC 3339 (any offset), or a timezone-less `YYYY-MM-DDThh:mm:ss[.f]` taken as UTC.
fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc().fixed_offset()))
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// One attribute value against the operand (`op` is never `ne` here, and the operand never null).
fn compare_one(cand: &Value, op: CompareOp, operand: &Value, case_exact: bool, kind: AttrKind) -> bool {
    match (cand, operand) {
        (Value::Null | Value::Array(_) | Value::Object(_), _)
        | (_, Value::Null | Value::Array(_) | Value::Object(_)) => false,
        (Value::Bool(a), Value::Bool(b)) => op == CompareOp::Eq && a == b,
        (Value::Bool(a), Value::String(s)) => op == CompareOp::Eq && s.trim().eq_ignore_ascii_case(bool_str(*a)),
        (Value::Bool(_), Value::Number(_)) | (Value::Number(_), Value::Bool(_)) => false,
        (Value::Number(a), Value::Number(b)) => {
            if is_substring_op(op) {
                text_op(op, &a.to_string(), &b.to_string(), true)
            } else {
                num_op(op, a, b)
            }
        }
        (Value::Number(a), Value::String(s)) => {
            if is_substring_op(op) {
                text_op(op, &a.to_string(), s, true)
            } else {
                parse_number(s.trim()).is_some_and(|b| num_op(op, a, &b))
            }
        }
        (Value::String(a), Value::String(b)) => {
            if kind == AttrKind::DateTime
                && !is_substring_op(op)
                && let (Some(x), Some(y)) = (parse_datetime(a), parse_datetime(b))
            {
                return ordering_holds(op, x.cmp(&y));
            }
            text_op(op, a, b, case_exact)
        }
        (Value::String(a), Value::Number(b)) => {
            if !is_substring_op(op)
                && let Some(x) = parse_number(a.trim())
            {
                return num_op(op, &x, b);
            }
            text_op(op, a, &b.to_string(), case_exact)
        }
        (Value::String(a), Value::Bool(b)) => text_op(op, a, bool_str(*b), false),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
