//! Logs: one flat JSON object per line on stdout, which Lambda's JSON log format (template.yaml
//! `LoggingConfig`) passes to CloudWatch as is. The fields of every enclosing span are merged
//! into each line, so a line inside a request or a job carries its `request_id`,
//! `integration_id` and `job_id` without repeating them at each call site, and CloudWatch Logs
//! Insights can filter on them directly (`filter job_id = "…"`).
//!
//! What must never be logged (tokens, passwords, whole SCIM resources, connector secrets) is
//! kept out at the call sites; `tests/observability.rs` plants such values and scans the output.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// The event formatter: `timestamp`, `level`, `target`, then span fields (outermost first),
/// then the event's own fields, `message` among them.
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // Span fields are stored already formatted by `JsonFields`: a JSON object.
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&fields.fields)
                {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

/// The level filter: Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by `LoggingConfig`), else `RUST_LOG`,
/// else `info`.
pub fn filter_from_env() -> Targets {
    let spec = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_default();
    filter_for(&spec)
}

/// The ceiling on other crates' lines, whatever the spec: at `trace`, `lambda_runtime` logs each
/// raw event, Authorization header and SCIM body included; the AWS SDK's and the HTTP stack's
/// debug lines are noise. A target covers every module path that starts with it
/// (`lambda_runtime` covers `lambda_runtime_api_client`, `aws_sdk` every service client).
const CEILING: &[(&str, Level)] = &[
    ("lambda_runtime", Level::INFO),
    ("lambda_http", Level::INFO),
    ("aws_config", Level::WARN),
    ("aws_smithy", Level::WARN),
    ("aws_sdk", Level::WARN),
    ("aws_runtime", Level::WARN),
    ("aws_sigv4", Level::WARN),
    ("hyper", Level::INFO),
    ("reqwest", Level::INFO),
    ("h2", Level::INFO),
    ("rustls", Level::INFO),
];

/// The ceiling as a filter of its own: the subscriber passes a line only when both it and the
/// spec's filter do, so no directive of the spec (a more specific target included) lifts it.
fn ceiling() -> Targets {
    Targets::new().with_default(Level::TRACE).with_targets(CEILING.iter().copied())
}

/// The filter a spec asks for: pieces separated by commas, each a level (the default for every
/// target, `info` when none is given), `target=level`, or a bare target (all of its lines, as in
/// `RUST_LOG`). That is `RUST_LOG`'s syntax without its span and field filters, which would
/// need a regex engine in every binary (docs/operations.md "Log level"). Lambda's `FATAL` reads
/// as `error`. A spec with any piece that is none of these (a span filter, `target=` without a
/// level, `target=loud`) means `info`, rather than a filter that enables nothing.
pub fn filter_for(spec: &str) -> Targets {
    parse_spec(spec).unwrap_or_else(|| Targets::new().with_default(Level::INFO))
}

fn parse_spec(spec: &str) -> Option<Targets> {
    let level = |text: &str| match text.trim() {
        "" => None, // `LevelFilter` would read an empty level as `error`
        t if t.eq_ignore_ascii_case("fatal") => Some(LevelFilter::ERROR),
        t => t.parse::<LevelFilter>().ok(),
    };
    let target = |text: &str| {
        let text = text.trim();
        let path = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-');
        (!text.is_empty() && text.chars().all(path)).then(|| text.to_owned())
    };
    let mut filter = Targets::new().with_default(Level::INFO);
    for piece in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        filter = match (piece.split_once('='), level(piece)) {
            (Some((name, lvl)), _) => filter.with_target(target(name)?, level(lvl)?),
            (None, Some(lvl)) => filter.with_default(lvl),
            (None, None) => filter.with_target(target(piece)?, LevelFilter::TRACE),
        };
    }
    Some(filter)
}

/// The subscriber every function installs, writing to `writer` (tests capture it): `filter`,
/// then the ceiling on other crates' lines.
pub fn subscriber<W>(writer: W, filter: Targets) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .with_max_level(Level::TRACE)
        .with_writer(writer)
        .finish()
        .with(filter)
        .with(ceiling())
}

/// Installs the JSON subscriber on stdout for the whole process. Call once, first thing in `main`.
pub fn init() {
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout, filter_from_env()));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `spec` lets through of: ours at info and debug, the Lambda runtime's raw
    /// event at trace (a more specific target than the ceiling's), the runtime at info, the
    /// SDK at info and warn.
    fn passed(spec: &str) -> Vec<String> {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing::subscriber::with_default(subscriber(move || writer.clone(), filter_for(spec)), || {
            tracing::info!(target: "idlcm::worker", "ours-info");
            tracing::debug!(target: "idlcm::worker", "ours-debug");
            tracing::trace!(target: "lambda_runtime::layers::api_response", "raw-event");
            tracing::info!(target: "lambda_runtime_api_client", "runtime-info");
            tracing::info!(target: "aws_sdk_dynamodb::client", "sdk-info");
            tracing::warn!(target: "aws_smithy_runtime::client", "sdk-warn");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["message"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_spec_sets_our_levels_but_never_lets_other_crates_lines_past_the_ceiling() {
        let all_of_ours = ["ours-info", "ours-debug", "runtime-info", "sdk-warn"];
        assert_eq!(passed("TRACE"), all_of_ours);
        // A directive naming the runtime's own module does not lift the ceiling.
        assert_eq!(passed("trace,lambda_runtime::layers::api_response=trace,aws_sdk_dynamodb=trace"), all_of_ours);
        // The ceiling is not a floor: a stricter spec holds for every crate.
        assert_eq!(passed("error"), Vec::<String>::new());
        assert_eq!(passed("off,idlcm::worker=debug"), ["ours-info", "ours-debug"]);
        // Pieces are trimmed, empty ones skipped; targets without a level keep the default.
        assert_eq!(passed(" info , idlcm::worker = debug ,"), ["ours-info", "ours-debug", "runtime-info", "sdk-warn"]);
        assert_eq!(passed("idlcm=debug"), ["ours-info", "ours-debug", "runtime-info", "sdk-warn"]);
        // A bare target is all of its lines; Lambda's FATAL is error.
        assert_eq!(passed("idlcm"), ["ours-info", "ours-debug", "runtime-info", "sdk-warn"]);
        assert_eq!(passed("FATAL"), Vec::<String>::new());
        // Empty, and what is not a level or a directive (RUST_LOG's span filters among it), mean info.
        for spec in ["", "  ", "info,", "[request{id}]=trace", "idlcm=loud", "idlcm=", "=debug", "info,a b"] {
            assert_eq!(passed(spec), ["ours-info", "runtime-info", "sdk-warn"], "{spec:?}");
        }
    }

    #[test]
    fn lines_are_flat_json_with_the_fields_of_every_enclosing_span() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = subscriber(move || writer.clone(), filter_for("info"));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("http", request_id = "r-1", integration_id = "i-1");
            let _o = outer.enter();
            let inner = tracing::info_span!("job", job_id = "j-1");
            let _i = inner.enter();
            tracing::info!(attempts = 3u64, ok = true, "job succeeded");
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["message"], "job succeeded");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["integration_id"], "i-1");
        assert_eq!(line["job_id"], "j-1");
        assert_eq!(line["attempts"], 3);
        assert_eq!(line["ok"], true);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
