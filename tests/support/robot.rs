//! A webhook robot on 127.0.0.1: records every delivery (signature header and raw body) and
//! answers with the status it is told to, `202 Accepted` unless set otherwise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One delivery as the robot received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("delivery JSON")
    }
}

#[derive(Clone)]
pub struct Robot {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    delay_ms: Arc<Mutex<u64>>,
    /// Deliveries being answered now, and the most there ever were at once.
    in_flight: Arc<(AtomicUsize, AtomicUsize)>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for Robot {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl Robot {
    pub async fn start() -> Robot {
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(202u16));
        let delay_ms = Arc::new(Mutex::new(0u64));
        let in_flight = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (r, st, dl, fl) = (received.clone(), status.clone(), delay_ms.clone(), in_flight.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (r, st, dl, fl) = (r.clone(), st.clone(), dl.clone(), fl.clone());
                async move {
                    let now = fl.0.fetch_add(1, Ordering::SeqCst) + 1;
                    fl.1.fetch_max(now, Ordering::SeqCst);
                    let signature =
                        headers.get("x-idlcm-signature").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
                    r.lock().unwrap().push(Received { signature, body });
                    let delay = *dl.lock().unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    fl.0.fetch_sub(1, Ordering::SeqCst);
                    let code = *st.lock().unwrap();
                    StatusCode::from_u16(code).unwrap_or(StatusCode::ACCEPTED)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind robot");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("robot") });
        Robot { url, received, status, delay_ms, in_flight, server: Arc::new(server) }
    }

    /// What the robot answers from now on.
    pub fn answer(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }

    /// How long the robot takes to answer from now on.
    pub fn delay(&self, millis: u64) {
        *self.delay_ms.lock().unwrap() = millis;
    }

    /// The most deliveries the robot was answering at one time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.1.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The actions delivered so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.received().iter().map(|r| r.json()["action"].as_str().unwrap_or("").to_string()).collect()
    }
}
