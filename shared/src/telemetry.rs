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
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
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

/// Crates whose lines below `info` never pass: at `trace`, `lambda_runtime` logs each raw
/// event, Authorization header and SCIM body included; the AWS SDK's debug lines are noise.
const QUIET: &str = "lambda_runtime=info,lambda_runtime_api_client=info,lambda_http=info,aws_config=warn,\
                     aws_smithy_runtime=warn,hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info";

/// A filter for `spec`: a level, or `target=level` directives separated by commas (the part of
/// `RUST_LOG`'s syntax without span and field filters, which would need a regex engine in
/// every binary: docs/operations.md "Log level"). Our own crates follow `spec`; `QUIET` comes after
/// it, so it replaces a directive of `spec` for the same crate. A spec that does not parse
/// falls back to `info`.
pub fn filter_for(spec: &str) -> Targets {
    let spec = spec.trim().to_ascii_lowercase();
    // `Targets` would read a span filter as a target name, and the spec would enable nothing.
    let spec = if spec.is_empty() || spec.contains(['[', ']', '{', '}']) { "info".to_string() } else { spec };
    format!("{spec},{QUIET}")
        .parse()
        .unwrap_or_else(|_| format!("info,{QUIET}").parse().expect("the quiet directives parse"))
}

/// The subscriber every function installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(writer: W, filter: Targets) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .finish()
        .with(filter)
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

    #[test]
    fn a_spec_sets_our_levels_but_never_lets_the_runtime_or_the_sdk_below_info() {
        use tracing::Level;
        let trace = filter_for("TRACE");
        assert!(trace.would_enable("idlcm::worker", &Level::TRACE));
        assert!(!trace.would_enable("lambda_runtime::layers::trace", &Level::DEBUG), "raw events stay out");
        assert!(trace.would_enable("lambda_runtime", &Level::INFO));
        assert!(!trace.would_enable("aws_smithy_runtime::client", &Level::INFO));
        assert!(trace.would_enable("aws_smithy_runtime::client", &Level::WARN));
        // A directive for a quiet crate is replaced by the quiet one, whatever its level.
        let asked = filter_for("warn,lambda_runtime=trace,idlcm::worker=debug");
        assert!(!asked.would_enable("lambda_runtime", &Level::DEBUG));
        assert!(asked.would_enable("idlcm::worker", &Level::DEBUG));
        assert!(!asked.would_enable("idlcm::store", &Level::INFO), "the default is warn");
        // Empty, and what does not parse (RUST_LOG's span filters among it), mean info.
        for spec in ["", "  ", "[request{id}]=trace", "idlcm=loud"] {
            let f = filter_for(spec);
            assert!(f.would_enable("idlcm::worker", &Level::INFO), "{spec:?}");
            assert!(!f.would_enable("idlcm::worker", &Level::DEBUG), "{spec:?}");
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
