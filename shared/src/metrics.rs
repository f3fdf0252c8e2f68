//! CloudWatch metrics in Embedded Metric Format: one JSON line per data point on stdout, which
//! CloudWatch Logs turns into metrics with no API call and no extra latency.
//!
//! | metric | unit | dimensions | emitted by |
//! |---|---|---|---|
//! | `Requests` | Count | `Route`, `Status` | scim-api, every answer (SCIM, admin, callback) |
//! | `RequestLatency` | Milliseconds | `Route`, `Status` | scim-api |
//! | `Jobs` | Count | `Action`, `Outcome` | worker and webhook callbacks |
//! | `EndToEndLatency` | Milliseconds | `Action` | a job applied: SCIM commit → app updated (not after an admin's retry) |
//! | `Retries` | Count | `Action` | a job rescheduled after a retryable failure |
//! | `SweeperResends` | Count | (none) | sweeper, every run (0 included) |
//!
//! The namespace is `IDLCM_METRICS_NAMESPACE` (template.yaml: `idlcm/<stack name>`), default
//! `idlcm`. Dimension values are route templates and fixed words, never ids or user data.
//! Each line carries `"level": "INFO"`, the level Lambda's JSON log filter reads, so metrics
//! pass at the template's `LogLevel` values (INFO, DEBUG).

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: the metrics share the dimensions.
pub fn emf_line(
    namespace: &str,
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, Unit, f64)],
) -> String {
    let mut doc = Map::new();
    doc.insert("level".into(), "INFO".into());
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() })).collect::<Vec<_>>(),
            }]
        }),
    );
    for (name, value) in dimensions {
        doc.insert((*name).into(), (*value).into());
    }
    for (name, _, value) in metrics {
        doc.insert((*name).into(), json!(value));
    }
    Value::Object(doc).to_string()
}

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();
static NAMESPACE: OnceLock<String> = OnceLock::new();

/// Sends every metric line to `sink` instead of stdout (tests). First call wins.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

fn namespace() -> &'static str {
    NAMESPACE.get_or_init(|| {
        std::env::var("IDLCM_METRICS_NAMESPACE").ok().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "idlcm".into())
    })
}

/// Emits one data point of each metric, with these dimensions.
pub fn emit(dimensions: &[(&str, &str)], metrics: &[(&str, Unit, f64)]) {
    let line = emf_line(namespace(), chrono::Utc::now().timestamp_millis(), dimensions, metrics);
    match SINK.get() {
        Some(sink) => sink(&line),
        // One write per line under stdout's lock: log lines and metric lines never interleave.
        None => println!("{line}"),
    }
}

/// `Jobs{Action, Outcome}`: one job attempt came to `outcome`.
pub fn job(action: &str, outcome: &str) {
    emit(&[("Action", action), ("Outcome", outcome)], &[("Jobs", Unit::Count, 1.0)]);
}

/// A job applied: `Jobs{succeeded}` and the latency from the SCIM commit (the job's
/// `created_at`), unless an admin retried it (`retries` > 0: then the time says when the admin
/// acted, not how fast idlcm is).
pub fn job_applied(action: &str, created_at: &str, retries: u32) {
    job(action, "succeeded");
    if let Some(ms) = ms_since(created_at).filter(|_| retries == 0) {
        emit(&[("Action", action)], &[("EndToEndLatency", Unit::Milliseconds, ms)]);
    }
}

/// `Retries{Action}`: a job rescheduled after a retryable failure.
pub fn retry(action: &str) {
    emit(&[("Action", action)], &[("Retries", Unit::Count, 1.0)]);
}

/// Milliseconds from an RFC 3339 time (a job's `created_at`) to now; `None` if unparsable.
pub fn ms_since(rfc3339: &str) -> Option<f64> {
    let then = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some((chrono::Utc::now() - then.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_documents_declare_their_dimensions_and_metrics() {
        let line = emf_line(
            "idlcm/prod",
            1_700_000_000_000,
            &[("Action", "provision"), ("Outcome", "succeeded")],
            &[("Jobs", Unit::Count, 1.0), ("EndToEndLatency", Unit::Milliseconds, 812.0)],
        );
        let doc: Value = serde_json::from_str(&line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], "idlcm/prod");
        assert_eq!(directive["Dimensions"], json!([["Action", "Outcome"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{ "Name": "Jobs", "Unit": "Count" }, { "Name": "EndToEndLatency", "Unit": "Milliseconds" }])
        );
        assert_eq!(doc["Action"], "provision");
        assert_eq!(doc["Outcome"], "succeeded");
        assert_eq!(doc["Jobs"], 1.0);
        assert_eq!(doc["EndToEndLatency"], 812.0);
    }

    #[test]
    fn a_metric_without_dimensions_has_one_empty_dimension_set() {
        let doc: Value = serde_json::from_str(&emf_line("n", 0, &[], &[("SweeperResends", Unit::Count, 0.0)])).unwrap();
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(doc["SweeperResends"], 0.0);
    }

    #[test]
    fn latency_since_a_commit_time() {
        let then = (chrono::Utc::now() - chrono::Duration::milliseconds(1500)).to_rfc3339();
        let ms = ms_since(&then).unwrap();
        assert!((1500.0..60_000.0).contains(&ms), "{ms}");
        assert_eq!(ms_since("yesterday"), None);
    }
}
