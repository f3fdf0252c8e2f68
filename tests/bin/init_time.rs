//! `make bench`: the init time of Lambda functions, side by side in one run (BENCHMARKS.md).
//! Each run starts the function's binary against a Lambda runtime API of our own on 127.0.0.1
//! and times it from the spawn to its first `GET …/runtime/invocation/next`: process start and
//! everything `main` does before it can take an event (clients, configuration, TLS roots).
//! Binaries are interleaved run by run, so drift on the machine touches all of them alike.
//!
//! Usage: init_time <runs> <reference name> <name>=<binary> …
//! Prints, per binary, the median and the fastest run, the ratio of medians to the reference,
//! and the binary's size.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// What every function needs to start: Lambda's variables, a region and credentials (no call
/// is made at init), and idlcm's own settings (placeholders: nothing is reached).
const ENV: &[(&str, &str)] = &[
    ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
    ("AWS_LAMBDA_LOG_GROUP_NAME", "bench"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("IDLCM_TABLE", "bench"),
    ("IDLCM_JOBS_QUEUE_URL", "http://127.0.0.1:9/queue.fifo"),
    ("IDLCM_JOBS_DLQ_URL", "http://127.0.0.1:9/dlq.fifo"),
    ("IDLCM_ADMIN_TOKEN_SHA256", "0000000000000000000000000000000000000000000000000000000000000000"),
];

/// One cold start: spawn to the first request for an event.
async fn once(binary: &str) -> Result<Duration, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let api = listener.local_addr().map_err(|e| e.to_string())?.to_string();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{binary}: {e}"))?;
    let wait = async {
        let (mut socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut first = [0u8; 64];
        let n = socket.read(&mut first).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((started.elapsed(), String::from_utf8_lossy(&first[..n]).to_string()))
    };
    let result = tokio::time::timeout(Duration::from_secs(10), wait).await;
    let _ = child.kill().await; // the run is over either way
    let (took, request) = result.map_err(|_| format!("{binary} asked for no event within 10 s"))??;
    if !request.starts_with("GET /2018-06-01/runtime/invocation/next") {
        return Err(format!("{binary}: unexpected first request {request:?}"));
    }
    Ok(took)
}

/// The performance issue's budget: every function's init at most this many times the minimal
/// SDK function's, measured in the same run.
const INIT_BUDGET: f64 = 1.15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: init_time <runs> <reference name> <name>=<binary> …";
    let runs: usize = args.first().and_then(|r| r.parse().ok()).ok_or(usage)?;
    let reference = args.get(1).ok_or(usage)?.clone();
    let binaries: Vec<(String, String)> = args[2..]
        .iter()
        .map(|a| a.split_once('=').map(|(n, p)| (n.to_string(), p.to_string())).ok_or(usage))
        .collect::<Result<_, _>>()?;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); binaries.len()];
    for _ in 0..runs {
        for (i, (_, path)) in binaries.iter().enumerate() {
            times[i].push(once(path).await?);
        }
    }
    let medians: Vec<Duration> = times.iter().map(|t| median(t.clone())).collect();
    let reference_ms = binaries
        .iter()
        .position(|(n, _)| *n == reference)
        .map(|i| medians[i].as_secs_f64() * 1000.0)
        .ok_or(format!("no binary named {reference}"))?;
    for (i, (name, path)) in binaries.iter().enumerate() {
        let ms = medians[i].as_secs_f64() * 1000.0;
        let fastest = times[i].iter().min().copied().unwrap_or_default().as_secs_f64() * 1000.0;
        let size = std::fs::metadata(path).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
        let ratio = ms / reference_ms;
        // The reference functions (`ref-…`) are what the budget is measured against.
        let verdict = match name.starts_with("ref-") {
            true => String::new(),
            false if ratio <= INIT_BUDGET => format!(" (budget <= {INIT_BUDGET}x: met)"),
            false => format!(" (budget <= {INIT_BUDGET}x: NOT met)"),
        };
        println!(
            "BENCH init {name}: median {ms:.1} ms, fastest {fastest:.1} ms over {runs} runs = {ratio:.2}x {reference}{verdict}; binary {size:.1} MB"
        );
    }
    Ok(())
}
