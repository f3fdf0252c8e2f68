//! DynamoDB capacity units of a set of calls, estimated from the keys they named and the items'
//! sizes read back afterwards (moto reports no consumed capacity). The rules are DynamoDB's
//! on-demand ones (BENCHMARKS.md "Capacity units"): a write is one unit per started KB of the
//! item, twice that inside a transaction, plus the same again for each index write it causes
//! (both indexes project every attribute, so any change to an item in an index rewrites its
//! entry; a new value of an index key is two index writes, the old entry deleted and the new
//! one put; an index key removed is one); a strongly consistent read is one unit per started
//! 4 KB, twice that inside a transaction. Estimates, not bills: an item written twice is sized
//! as it is at the end, an index key set by an update counts as moved (two writes) even when
//! the item had no entry before, index writes inside a transaction are doubled like the item's,
//! and a Query counts one read unit.

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

/// The table's two indexes, by their partition key attribute.
const INDEX_KEYS: [&str; 2] = ["gsi1pk", "gsi2pk"];

/// What a write does to one index's entry of its item, as far as the call says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum IndexKey {
    /// The call does not name the index's key: the entry is rewritten if the item is in the index.
    Untouched,
    /// A put writes an item holding the key: the entry is written.
    Put,
    /// An update sets the key: the entry moves (delete and put).
    Set,
    /// An update removes the key: the entry is deleted.
    Removed,
}

/// One item touched by a call: its key, whether it was written, inside a transaction, and what
/// it does to each index's key.
struct Touch {
    key: (String, String),
    write: bool,
    transaction: bool,
    index_keys: [IndexKey; 2],
}

/// What a write does to each index key: a put's item holds it or not; in an update expression
/// the part after `REMOVE` removes, the rest (`SET`) sets. The index's partition or sort key
/// (`gsi1pk`, `gsi1sk`): a new value of either moves the entry.
fn index_keys(action: &Value) -> [IndexKey; 2] {
    if let Some(item) = action.get("Item").or_else(|| action.get("PutRequest").and_then(|p| p.get("Item"))) {
        return INDEX_KEYS.map(|k| if item.get(k).is_some() { IndexKey::Put } else { IndexKey::Untouched });
    }
    let expr = action.get("UpdateExpression").and_then(Value::as_str).unwrap_or_default();
    let (set, remove) = match expr.find("REMOVE") {
        Some(at) => expr.split_at(at),
        None => (expr, ""),
    };
    INDEX_KEYS.map(|pk| {
        let sk = pk.replace("pk", "sk");
        let names = |part: &str| part.contains(pk) || part.contains(&sk);
        if names(remove) {
            IndexKey::Removed
        } else if names(set) {
            IndexKey::Set
        } else {
            IndexKey::Untouched
        }
    })
}

/// Index writes of one write touch, given the item as it is now.
fn index_writes(t: &Touch, item: Option<&HashMap<String, AttributeValue>>) -> usize {
    INDEX_KEYS
        .iter()
        .zip(t.index_keys)
        .map(|(k, how)| match how {
            IndexKey::Set => 2,
            IndexKey::Put | IndexKey::Removed => 1,
            IndexKey::Untouched => usize::from(item.is_some_and(|i| i.contains_key(*k))),
        })
        .sum()
}

fn touches(operation: &str, body: &Value) -> Vec<Touch> {
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
                let add = factor * units * (1 + index_writes(&t, item)) as f64;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_a_write_does_to_each_index_entry() {
        // A job started: its queued entry moves to the deadline partition; the history entry
        // is rewritten because the item changed (the index projects every attribute).
        let start =
            json!({"UpdateExpression": "SET #status = :running, gsi1pk = :dpk, gsi1sk = :dsk REMOVE waiting_for"});
        assert_eq!(index_keys(&start), [IndexKey::Set, IndexKey::Untouched]);
        let finish = json!({"UpdateExpression": "SET #status = :status REMOVE gsi1pk, gsi1sk, awaiting_until"});
        assert_eq!(index_keys(&finish), [IndexKey::Removed, IndexKey::Untouched]);
        // A re-sent job's queued entry moves by its sort key alone.
        let resent = json!({"UpdateExpression": "SET gsi1sk = :sk ADD resends :one"});
        assert_eq!(index_keys(&resent), [IndexKey::Set, IndexKey::Untouched]);
        let put = json!({"Item": {"pk": {"S": "p"}, "sk": {"S": "s"}, "gsi1pk": {"S": "Q"}, "gsi2pk": {"S": "U"}}});
        assert_eq!(index_keys(&put), [IndexKey::Put, IndexKey::Put]);
        let batch_put = json!({"PutRequest": {"Item": {"pk": {"S": "p"}, "sk": {"S": "s"}, "gsi2pk": {"S": "U"}}}});
        assert_eq!(index_keys(&batch_put), [IndexKey::Untouched, IndexKey::Put]);

        let in_history: HashMap<String, AttributeValue> =
            HashMap::from([("gsi2pk".to_string(), AttributeValue::S("U".into()))]);
        let touch = |index_keys| Touch { key: ("p".into(), "s".into()), write: true, transaction: false, index_keys };
        assert_eq!(index_writes(&touch(index_keys(&start)), Some(&in_history)), 3, "moved (2) and rewritten (1)");
        assert_eq!(index_writes(&touch(index_keys(&finish)), Some(&in_history)), 2, "removed (1) and rewritten (1)");
        assert_eq!(index_writes(&touch(index_keys(&put)), None), 2, "two entries put");
        assert_eq!(index_writes(&touch([IndexKey::Untouched; 2]), None), 0, "an item in no index");
    }
}
