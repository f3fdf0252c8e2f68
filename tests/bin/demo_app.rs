//! `demo_app`: the demo target app (users and roles, its own REST API) on 127.0.0.1, for `make run`.
//!
//! Configuration (flags win over the environment):
//! - `--addr ADDR` / `DEMO_APP_ADDR`: default `127.0.0.1:8090`; only 127.0.0.1 is accepted.
//! - `DEMO_APP_API_KEY` (required): the key `/api/*` calls must send as `Authorization: Bearer <key>`.
//!   Environment only, so it stays out of the process list.
//! - `--roles LIST` / `DEMO_APP_ROLES`: comma-separated allowed roles, default `admin,user,viewer`.
//!
//! Prints `demo app on http://127.0.0.1:<port>` once listening; serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use idlcm_tests::demo_app::{DEFAULT_ADDR, DEFAULT_ROLES, DemoApp, parse_roles};

const USAGE: &str = "usage: DEMO_APP_API_KEY=<key> demo_app [--addr 127.0.0.1:PORT] [--roles admin,user,viewer]
env: DEMO_APP_ADDR (default 127.0.0.1:8090), DEMO_APP_API_KEY (required), DEMO_APP_ROLES";

struct Config {
    addr: SocketAddr,
    api_key: String,
    roles: Vec<String>,
}

enum Parsed {
    Run(Config),
    Help,
}

fn env(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut addr = env("DEMO_APP_ADDR")?;
    let mut roles = env("DEMO_APP_ROLES")?;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let target = match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--addr" => &mut addr,
            "--roles" => &mut roles,
            "--api-key" => return Err("pass the API key in DEMO_APP_API_KEY, not on the command line".to_owned()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = inline.or_else(|| args.next()).ok_or_else(|| format!("{flag} needs a value"))?;
        *target = Some(value);
    }

    let addr_text = addr.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let addr: SocketAddr =
        addr_text.trim().parse().map_err(|_| format!("address {addr_text:?} is not of the form 127.0.0.1:PORT"))?;
    if addr.ip() != std::net::Ipv4Addr::LOCALHOST {
        return Err(format!("refusing to listen on {}: the demo app only listens on 127.0.0.1", addr.ip()));
    }
    let api_key = env("DEMO_APP_API_KEY")?.ok_or("DEMO_APP_API_KEY is required (any non-empty string)")?;
    let roles = match roles {
        Some(list) => parse_roles(&list),
        None => DEFAULT_ROLES.iter().map(|r| r.to_string()).collect(),
    };
    if roles.is_empty() {
        return Err("DEMO_APP_ROLES names no role".to_owned());
    }
    Ok(Parsed::Run(Config { addr, api_key, roles }))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("demo_app: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let demo = match DemoApp::start(config.addr, config.api_key, config.roles).await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("demo_app: cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    println!("demo app on {}", demo.url);
    let stopped = shutdown_signal().await;
    drop(demo);
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo_app: cannot wait for a signal: {e}");
            ExitCode::FAILURE
        }
    }
}
