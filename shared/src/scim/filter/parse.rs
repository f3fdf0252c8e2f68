//! Attribute paths, and the recursive-descent parser of filters and PATCH paths.

use super::*;

// ---------------------------------------------------------------------------------------------

/// ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA; also `$ref`.
pub(super) fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `urn:` followed by non-empty segments of letters, digits, `.`, `-`, `_`.
pub(super) fn is_schema_urn(uri: &str) -> bool {
    uri.split(':').count() >= 2
        && uri.split(':').all(|seg| {
            !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        })
}

pub(super) fn attr_path_from(s: &str) -> PResult<AttrPath> {
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

pub(super) fn check_len(input: &str, what: &str) -> PResult<()> {
    if input.len() > MAX_FILTER_LEN && input.chars().count() > MAX_FILTER_LEN {
        return Err(format!("{what} is longer than {MAX_FILTER_LEN} characters"));
    }
    Ok(())
}

pub(super) fn parse_filter(input: &str) -> PResult<Filter> {
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

pub(super) fn parse_path(input: &str) -> PResult<PatchPath> {
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

pub(super) struct Parser<'a> {
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
pub(super) fn word_value(w: &str) -> Value {
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
pub(super) fn parse_number(s: &str) -> Option<Number> {
    let first = s.bytes().next()?;
    if first != b'-' && !first.is_ascii_digit() {
        return None;
    }
    serde_json::from_str::<Number>(s).ok()
}
