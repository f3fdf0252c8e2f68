//! template.yaml against the code: the names the functions read (environment variables, the
//! table's keys, indexes and TTL attribute, the queue's settings, the binaries) must be the
//! names the template defines. A rename on either side fails here, not in a deployed stack.
//! (`cfn-lint` and `sam validate --lint` check the template on its own, in `make test`.)

use std::collections::BTreeSet;

use idlcm::config::{SCIM_API_ENV, SWEEPER_ENV, WORKER_ENV};
use idlcm::store::keys;
use serde_norway::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// `!Ref X` → X; `!GetAtt X.Attr` → (X, Attr).
fn tag<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    match value {
        Value::Tagged(t) if t.tag == name => t.value.as_str(),
        _ => None,
    }
}

fn get_att(value: &Value) -> Option<(&str, &str)> {
    tag(value, "!GetAtt").and_then(|s| s.split_once('.'))
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    &t["Resources"][id]
}

fn resource_type<'a>(t: &'a Value, id: &str) -> &'a str {
    resource(t, id)["Type"].as_str().unwrap_or_else(|| panic!("no resource {id} in template.yaml"))
}

/// A function's environment: the Globals' variables, then its own.
fn environment(t: &Value, function: &str) -> Vec<(String, Value)> {
    let mut vars: Vec<(String, Value)> = Vec::new();
    for source in [&t["Globals"]["Function"], &resource(t, function)["Properties"]] {
        if let Some(map) = source["Environment"]["Variables"].as_mapping() {
            for (k, v) in map {
                let k = k.as_str().unwrap().to_string();
                vars.retain(|(name, _)| *name != k);
                vars.push((k, v.clone()));
            }
        }
    }
    vars
}

fn value_of<'a>(env: &'a [(String, Value)], name: &str) -> &'a Value {
    &env.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("{name} is not set in template.yaml")).1
}

const FUNCTIONS: [(&str, &str, &[&str]); 3] = [
    ("ScimApiFunction", "scim-api", SCIM_API_ENV),
    ("WorkerFunction", "worker", WORKER_ENV),
    ("SweeperFunction", "sweeper", SWEEPER_ENV),
];

#[test]
fn every_variable_the_template_sets_is_one_the_code_reads_and_the_required_ones_are_set() {
    let t = template();
    for (function, _, reads) in FUNCTIONS {
        let env = environment(&t, function);
        let set: BTreeSet<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        let read: BTreeSet<&str> = reads.iter().copied().collect();
        let unknown: Vec<_> = set.difference(&read).collect();
        assert!(unknown.is_empty(), "{function}: template.yaml sets {unknown:?}, which the code never reads");
        for required in ["IDLCM_TABLE", "IDLCM_JOBS_QUEUE_URL", "IDLCM_METRICS_NAMESPACE"] {
            assert!(set.contains(required), "{function}: {required} is not set in template.yaml");
        }
    }
    // The deployed API reads its admin token hash from SSM, never from a template value.
    let api = environment(&t, "ScimApiFunction");
    assert!(api.iter().any(|(k, _)| k == "IDLCM_ADMIN_TOKEN_SHA256_REF"));
    assert!(api.iter().all(|(k, _)| k != "IDLCM_ADMIN_TOKEN_SHA256"), "a plain admin hash in the template");
}

#[test]
fn table_variable_names_the_table_whose_keys_indexes_and_ttl_the_store_uses() {
    let t = template();
    for (function, _, _) in FUNCTIONS {
        let env = environment(&t, function);
        let table = tag(value_of(&env, "IDLCM_TABLE"), "!Ref").expect("IDLCM_TABLE: !Ref <table>");
        assert_eq!(resource_type(&t, table), "AWS::DynamoDB::Table", "{function}: IDLCM_TABLE");
    }
    let api_env = environment(&t, "ScimApiFunction");
    let table_id = tag(value_of(&api_env, "IDLCM_TABLE"), "!Ref").unwrap();
    let props = &resource(&t, table_id)["Properties"];
    let key_schema = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| (k["AttributeName"].as_str().unwrap().into(), k["KeyType"].as_str().unwrap().into()))
            .collect()
    };
    let pair = |pk: &str, sk: &str| vec![(pk.to_string(), "HASH".to_string()), (sk.to_string(), "RANGE".to_string())];
    assert_eq!(key_schema(&props["KeySchema"]), pair(keys::PK, keys::SK));
    for (index, pk, sk) in [(keys::GSI1, keys::GSI1_PK, keys::GSI1_SK), (keys::GSI2, keys::GSI2_PK, keys::GSI2_SK)] {
        let gsi = props["GlobalSecondaryIndexes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|g| g["IndexName"] == index)
            .unwrap_or_else(|| panic!("the store queries index {index}, which template.yaml does not define"));
        assert_eq!(key_schema(&gsi["KeySchema"]), pair(pk, sk), "index {index}");
        assert_eq!(gsi["Projection"]["ProjectionType"], "ALL", "index {index}: the store reads whole rows");
    }
    assert_eq!(props["TimeToLiveSpecification"]["AttributeName"], keys::TTL_ATTRIBUTE);
    assert_eq!(props["BillingMode"], "PAY_PER_REQUEST");
}

#[test]
fn queue_variable_names_the_fifo_queue_the_worker_consumes_with_matching_redrive_and_timeouts() {
    let t = template();
    let queue = |function: &str| {
        let env = environment(&t, function);
        let (id, attr) =
            get_att(value_of(&env, "IDLCM_JOBS_QUEUE_URL")).expect("IDLCM_JOBS_QUEUE_URL: !GetAtt <queue>.QueueUrl");
        (id.to_string(), attr.to_string())
    };
    let (jobs, _) = queue("ScimApiFunction");
    for (function, _, _) in FUNCTIONS {
        assert_eq!(queue(function), (jobs.clone(), "QueueUrl".into()), "{function} sends to or reads another queue");
    }
    assert_eq!(resource_type(&t, &jobs), "AWS::SQS::Queue");
    let props = &resource(&t, &jobs)["Properties"];
    assert_eq!(props["FifoQueue"], true, "jobs rely on FIFO per-user order and deduplication ids");

    let worker = &resource(&t, "WorkerFunction")["Properties"];
    let event = &worker["Events"]["Jobs"]["Properties"];
    assert_eq!(get_att(&event["Queue"]), Some((jobs.as_str(), "Arn")), "the worker's SQS event reads another queue");
    let failures: Vec<&str> =
        event["FunctionResponseTypes"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(failures, ["ReportBatchItemFailures"], "the worker answers with batch item failures");

    let max_receives: u64 = value_of(&environment(&t, "WorkerFunction"), "IDLCM_MAX_RECEIVES")
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("IDLCM_MAX_RECEIVES is a number");
    assert_eq!(props["RedrivePolicy"]["maxReceiveCount"].as_u64(), Some(max_receives), "worker vs redrive");
    let timeout = worker["Timeout"].as_u64().expect("worker Timeout");
    let visibility = props["VisibilityTimeout"].as_u64().expect("VisibilityTimeout");
    assert!(visibility >= 6 * timeout, "visibility timeout {visibility} s < 6 x worker timeout {timeout} s");
    let (dlq, _) = get_att(&props["RedrivePolicy"]["deadLetterTargetArn"]).expect("a dead-letter queue");
    assert_eq!(resource(&t, dlq)["Properties"]["FifoQueue"], true, "a FIFO queue's DLQ is FIFO");
}

#[test]
fn each_function_builds_a_binary_of_the_workspace_on_arm64_with_json_logs() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    for (function, binary, _) in FUNCTIONS {
        let metadata = &resource(&t, function)["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda", "{function}");
        assert_eq!(metadata["BuildProperties"]["Binary"], binary, "{function}");
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions/");
        let cargo = std::fs::read_to_string(format!("{manifest}{binary}/Cargo.toml")).expect("the function's crate");
        assert!(cargo.contains(&format!("name = \"{binary}\"")), "{function}: no binary {binary}");
    }
}

/// Every `IDLCM_*` name in the functions' source is in one of the declared lists the tests
/// above compare with the template: a new variable cannot skip the check.
#[test]
fn the_declared_variable_lists_cover_every_variable_the_source_names() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let declared: BTreeSet<&str> = SCIM_API_ENV.iter().chain(WORKER_ENV).chain(SWEEPER_ENV).copied().collect();
    let mut files = Vec::new();
    let mut dirs = vec![format!("{root}/shared/src"), format!("{root}/functions")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path.to_string_lossy().into_owned());
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 20, "source files not found under {root}");
    // Unit tests in files of their own (`*_tests.rs`) are test code as a whole.
    files.retain(|f| !f.to_string_lossy().ends_with("_tests.rs"));
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests name variables of their own (fixtures, planted secrets): production code only.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for piece in text.split('"').skip(1).step_by(2) {
            let is_env_name = piece.starts_with("IDLCM_")
                && piece.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if is_env_name {
                assert!(declared.contains(piece), "{}: {piece} is read but in no declared list", file.display());
            }
        }
    }
}
