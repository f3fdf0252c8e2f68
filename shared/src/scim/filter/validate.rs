//! Checking a parsed filter against a schema: unknown attributes, and operators an
//! attribute type cannot take.

use super::*;

// ---------------------------------------------------------------------------------------------

/// Where a path is evaluated: at the resource's top level, or inside an element of the
/// (possibly URN-qualified) attribute `parent` of a value filter.
#[derive(Clone, Copy)]
pub(super) enum Scope<'a> {
    Root,
    Elem { uri: Option<&'a str>, parent: &'a str },
}

/// The (uri, attr, sub) triple the schema is asked about.
pub(super) fn schema_key<'a>(path: &'a AttrPath, scope: Scope<'a>) -> (Option<&'a str>, &'a str, Option<&'a str>) {
    match scope {
        Scope::Root => (path.uri.as_deref(), &path.attr, path.sub.as_deref()),
        Scope::Elem { uri, parent } => (uri, parent, Some(&path.attr)),
    }
}

pub(super) fn display_path(path: &AttrPath, scope: Scope<'_>) -> String {
    match scope {
        Scope::Root => path.to_string(),
        Scope::Elem { parent, .. } => format!("{parent}.{path}"),
    }
}

pub(super) fn validate_in(filter: &Filter, schema: &dyn AttrSchema, scope: Scope<'_>) -> ScimResult<()> {
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
                if matches!(kind, Some(Type::Boolean) | Some(Type::Binary) | Some(Type::Complex)) {
                    return Err(ScimError::invalid_filter(format!(
                        "operator '{op}' is not supported on {} attribute '{}'",
                        kind_name(kind),
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
