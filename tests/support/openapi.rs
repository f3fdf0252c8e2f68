//! Checks admin API responses against `functions/scim-api/openapi.json`: the route, method
//! and status must be documented, and the body must match the documented schema (the JSON
//! Schema subset the file uses: `$ref`, `allOf`, `type` (one or several), `enum`, `const`,
//! `required`, `properties`, `items`).

use serde_json::Value;

pub struct OpenApi(Value);

impl Default for OpenApi {
    fn default() -> Self {
        Self(serde_json::from_str(include_str!("../../functions/scim-api/openapi.json")).expect("openapi.json parses"))
    }
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
}

impl OpenApi {
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(self.0.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null)),
            None => v,
        }
    }

    /// `Ok` when the response is documented and its body matches.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let path = path.split('?').next().unwrap_or(path);
        let paths = self.0["paths"].as_object().ok_or("no paths")?;
        let (template, item) =
            paths.iter().find(|(t, _)| matches_template(t, path)).ok_or(format!("{path} is not documented"))?;
        let op = &item[method.to_ascii_lowercase()];
        let response = self.resolve(&op["responses"][status.to_string()]);
        if response.is_null() {
            return Err(format!("{method} {template} does not document status {status}"));
        }
        match response.pointer("/content/application~1json/schema") {
            Some(schema) => self.validate(body, schema, "$"),
            None if body.is_null() => Ok(()),
            None => Err(format!("{method} {template} {status} documents no body, got {body}")),
        }
    }

    fn validate(&self, v: &Value, schema: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        if let Some(any) = schema["anyOf"].as_array() {
            let errors: Vec<String> = any.iter().filter_map(|s| self.validate(v, s, at).err()).collect();
            if errors.len() == any.len() {
                return Err(format!("{at}: matches none of anyOf: {}", errors.join("; ")));
            }
        }
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                self.validate(v, s, at)?;
            }
        }
        if let Some(options) = schema["enum"].as_array()
            && !options.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {options:?}"));
        }
        if let Some(c) = schema.get("const")
            && c != v
        {
            return Err(format!("{at}: {v} is not {c}"));
        }
        let type_ok = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        };
        match &schema["type"] {
            Value::String(t) if !type_ok(t) => return Err(format!("{at}: expected {t}, got {v}")),
            Value::Array(ts) if !ts.iter().filter_map(Value::as_str).any(type_ok) => {
                return Err(format!("{at}: expected one of {ts:?}, got {v}"));
            }
            _ => {}
        }
        if let Some(obj) = v.as_object() {
            for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{at}: missing required '{r}'"));
                }
            }
            for (k, s) in schema["properties"].as_object().into_iter().flatten() {
                if let Some(x) = obj.get(k) {
                    self.validate(x, s, &format!("{at}.{k}"))?;
                }
            }
        }
        if let (Some(items), Some(s)) = (v.as_array(), schema.get("items")) {
            for (i, x) in items.iter().enumerate() {
                self.validate(x, s, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }
}
