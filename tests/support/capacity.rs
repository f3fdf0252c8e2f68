//! DynamoDB capacity units of a set of calls, estimated from the keys they named and the items'
//! sizes read back afterwards (moto reports no consumed capacity). The rules are DynamoDB's
//! on-demand ones (BENCHMARKS.md "Capacity units"): a write is one unit per started KB of the
//! item, twice that inside a transaction, plus the same again for each index holding the item
//! (both indexes project every attribute); a strongly consistent read is one unit per started
//! 4 KB, twice that inside a transaction. Estimates, not bills: an item written twice is sized
//! as it is at the end, and a Query counts one read unit.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

/// Units of one set of calls.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Units {
    pub write: f64,
    pub read: f64,
}

/// DynamoDB's size of an attribute value (names and values in bytes; numbers about half their digits).
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        _ => 1,
    }
}

pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The `(pk, sk)` of a key or item in the AWS JSON protocol.
fn key_of(v: &Value) -> Option<(String, String)> {
    Some((v.get("pk")?.get("S")?.as_str()?.to_string(), v.get("sk")?.get("S")?.as_str()?.to_string()))
}

/// One item touched by a call: its key, whether it was written, inside a transaction.
struct Touch {
    key: (String, String),
    write: bool,
    transaction: bool,
    /// The call names an index key attribute (an index entry written or removed).
    index_keys: usize,
}

fn touches(operation: &str, body: &Value) -> Vec<Touch> {
    let index_keys = |v: &Value| {
        let text = v.to_string();
        usize::from(text.contains("gsi1pk")) + usize::from(text.contains("gsi2pk"))
    };
    let one = |k: Option<&Value>, write: bool, transaction: bool, whole: &Value| {
        k.and_then(key_of).map(|key| Touch { key, write, transaction, index_keys: index_keys(whole) })
    };
    let mut out = Vec::new();
    match operation {
        "PutItem" => out.extend(one(body.get("Item"), true, false, body)),
        "UpdateItem" | "DeleteItem" => out.extend(one(body.get("Key"), true, false, body)),
        "GetItem" => out.extend(one(body.get("Key"), false, false, body)),
        "TransactWriteItems" => {
            for action in body["TransactItems"].as_array().into_iter().flatten() {
                for (kind, field) in [("Put", "Item"), ("Update", "Key"), ("Delete", "Key"), ("ConditionCheck", "Key")]
                {
                    if let Some(a) = action.get(kind) {
                        out.extend(one(a.get(field), true, true, a));
                    }
                }
            }
        }
        "BatchWriteItem" => {
            for requests in body["RequestItems"].as_object().into_iter().flat_map(|m| m.values()) {
                for r in requests.as_array().into_iter().flatten() {
                    out.extend(one(r.get("PutRequest").and_then(|p| p.get("Item")), true, false, r));
                    out.extend(one(r.get("DeleteRequest").and_then(|p| p.get("Key")), true, false, r));
                }
            }
        }
        "BatchGetItem" => {
            for ka in body["RequestItems"].as_object().into_iter().flat_map(|m| m.values()) {
                for k in ka["Keys"].as_array().into_iter().flatten() {
                    out.extend(one(Some(k), false, false, &Value::Null));
                }
            }
        }
        _ => {}
    }
    out
}

/// The units of `calls` (operation, request body) against `table`, as the items are now.
pub async fn units(client: &aws_sdk_dynamodb::Client, table: &str, calls: &[(String, Vec<u8>)]) -> Units {
    let mut sizes: HashMap<(String, String), Option<HashMap<String, AttributeValue>>> = HashMap::new();
    let mut total = Units::default();
    for (operation, body) in calls {
        if operation.ends_with(crate::aws_calls::LEASE) {
            continue;
        }
        if operation == "Query" {
            total.read += 1.0;
            continue;
        }
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        for t in touches(operation, &body) {
            if !sizes.contains_key(&t.key) {
                let item = client
                    .get_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(t.key.0.clone()))
                    .key("sk", AttributeValue::S(t.key.1.clone()))
                    .consistent_read(true)
                    .send()
                    .await
                    .expect("GetItem")
                    .item;
                sizes.insert(t.key.clone(), item);
            }
            let item = sizes[&t.key].as_ref();
            let size = item.map(item_size).unwrap_or(0);
            let factor = if t.transaction { 2.0 } else { 1.0 };
            if t.write {
                let units = size.div_ceil(1024).max(1) as f64;
                let on_indexes =
                    item.map_or(0, |i| ["gsi1pk", "gsi2pk"].iter().filter(|k| i.contains_key(**k)).count());
                let add = factor * units * (1 + on_indexes.max(t.index_keys.min(2))) as f64;
                if std::env::var_os("IDLCM_UNITS_DEBUG").is_some() {
                    eprintln!("UNITS {operation} {:?} {size} bytes: {add} WU", t.key);
                }
                total.write += add;
            } else {
                total.read += factor * size.div_ceil(4096).max(1) as f64;
            }
        }
    }
    total
}
