//! Call budgets (BENCHMARKS.md): the AWS calls one single-user change makes on the request
//! path (the SCIM API) and in the worker, counted by an SDK interceptor on each side's clients.
//! A change that adds a call fails here. Where the target budget is met the test holds it;
//! where it is not met yet (PATCH on the request path: 4; the worker: 4) it holds today's
//! figure, so nothing gets worse while the gap is closed. The API in-process, DynamoDB and SQS
//! on moto, the demo app on loopback.

use idlcm_tests::aws_calls::LEASE;
use idlcm_tests::world::{World, patch};
use serde_json::json;

/// What one change cost: the API's calls and the worker's, by operation.
struct Cost {
    api: Vec<String>,
    worker: Vec<String>,
}

async fn cost_of<F, Fut>(w: &World, change: F) -> Cost
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (api, worker) = (w.stack.api_calls.get(), w.stack.worker_calls.get());
    change().await;
    let api = w.stack.api_calls.operations_since(api);
    w.settle().await;
    Cost { api, worker: w.stack.worker_calls.operations_since(worker) }
}

/// The budgets of one change; `api` and `worker` are ceilings on calls. A limit lease
/// (docs/operations.md "Limits") is reported apart: one serves the next 25 requests of the
/// window (at the default limits) and a quiet integration's first request per window needs
/// none, so it is not one change's cost; at most one may fall on a change.
fn check(name: &str, cost: &Cost, api: usize, worker: usize) {
    let leases = cost.api.iter().filter(|o| o.ends_with(LEASE)).count();
    let cost =
        &Cost { api: cost.api.iter().filter(|o| !o.ends_with(LEASE)).cloned().collect(), worker: cost.worker.clone() };
    println!(
        "BUDGET {name}: request path {} calls {:?} (+{leases} limit lease); worker {} calls {:?}",
        cost.api.len(),
        cost.api,
        cost.worker.len(),
        cost.worker
    );
    assert!(leases <= 1, "{name}: {leases} limit leases for one request");
    assert!(
        cost.api.len() <= api,
        "{name}: the request path made {} AWS calls (budget {api}): {:?}",
        cost.api.len(),
        cost.api
    );
    assert!(
        cost.worker.len() <= worker,
        "{name}: the worker made {} AWS calls for one job (budget {worker}): {:?}",
        cost.worker.len(),
        cost.worker
    );
}

#[tokio::test]
async fn a_single_user_change_stays_within_its_call_budget() {
    let w = World::new().await;
    let create = cost_of(&w, || async {
        w.create_user("budget@example.com").await;
    })
    .await;
    // A create: 3 calls on the request path (the budget, met). The worker: 5 (budget 4, not
    // met): job started, one BatchGetItem of its rows, the applied state, the job finished, its
    // request counted and closed in one write (the only job of a single user's change).
    check("create a user", &create, 3, 5);
    let uid = w.jobs().await[0].user_id.clone();

    let rename = cost_of(&w, || async {
        let body = patch(json!([{"op": "replace", "path": "name.givenName", "value": "Renamed"}]));
        let (s, v) = w.call("PATCH", &format!("/Users/{uid}"), Some(body)).await;
        assert_eq!(s, 200, "{v}");
    })
    .await;
    // PATCH: 5 on the request path (budget 4, not met yet): the integration, the user with its
    // assignment and the role groups by name in one BatchGetItem, the commit, the message, the
    // user's groups for the answer.
    check("PATCH a mapped attribute", &rename, 5, 5);

    let deactivate = cost_of(&w, || async {
        let body = patch(json!([{"op": "replace", "path": "active", "value": false}]));
        let (s, v) = w.call("PATCH", &format!("/Users/{uid}"), Some(body)).await;
        assert_eq!(s, 200, "{v}");
    })
    .await;
    check("PATCH deactivate", &deactivate, 5, 5);

    // A change the app does not care about makes no job, and the worker no call.
    let unmapped = cost_of(&w, || async {
        let body = patch(json!([{"op": "replace", "path": "title", "value": "Chief"}]));
        let (s, v) = w.call("PATCH", &format!("/Users/{uid}"), Some(body)).await;
        assert_eq!(s, 200, "{v}");
    })
    .await;
    check("PATCH an unmapped attribute", &unmapped, 4, 0);
}

/// Jobs per second through the worker, one batch of up to 10 at a time as Lambda hands them
/// over, against an app that takes 100 ms per call: the worker one job after the other
/// (`per_integration` 1) and concurrent (the default). `make bench` prints the BENCH lines.
#[tokio::test]
#[ignore = "a measurement: run by make bench"]
async fn bench_jobs_per_second_sequential_and_concurrent() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const JOBS: usize = 100;
    for per_integration in [1, idlcm::worker::PER_INTEGRATION] {
        let robot = idlcm_tests::robot::Robot::start().await;
        robot.answer(200);
        robot.delay(100);
        let stack = idlcm_tests::Stack::start().await;
        let hook = stack
            .create_integration_with(json!({
                "name": "Slow app",
                "connector": {"type": "webhook", "url": robot.url, "secret": "bench-secret-0123456789"},
                "attributes": ["userName"],
            }))
            .await;
        for n in 0..JOBS {
            let (s, v) = hook
                .call(&stack.http, "POST", "/Users", Some(idlcm_tests::world::user_body(&format!("b{n}@example.com"))))
                .await;
            assert_eq!(s, 201, "{v}");
        }
        let worker = Arc::new(idlcm::worker::Worker { per_integration, ..stack.worker() });
        let started = Instant::now();
        let r = robot.clone();
        let done = stack
            .event_source()
            .run_until(
                idlcm_tests::world::handler(worker),
                || async { r.received().len() >= JOBS },
                Duration::from_secs(300),
            )
            .await;
        assert!(done, "{} of {JOBS} delivered", robot.received().len());
        let took = started.elapsed().as_secs_f64();
        println!(
            "BENCH worker per_integration={per_integration}: {JOBS} jobs (app 100 ms per call) in {took:.1} s = {:.1} jobs/s, at most {} at once",
            JOBS as f64 / took,
            robot.max_in_flight()
        );
    }
}
