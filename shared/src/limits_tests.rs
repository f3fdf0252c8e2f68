use std::collections::HashMap;

use super::*;

/// The shared count, as `store::limits` keeps it: a lease takes `take` if it fits, else one if
/// that fits, else nothing.
#[derive(Default)]
struct Shared {
    used: HashMap<u64, u64>,
    leases: usize,
}

impl Shared {
    fn lease(&mut self, window: u64, take: u64, cap: u64) -> u64 {
        self.leases += 1;
        let used = self.used.entry(window).or_default();
        let granted = if *used + take <= cap {
            take
        } else if *used < cap {
            1
        } else {
            0
        };
        *used += granted;
        granted
    }
}

/// One request through an instance's counter: the final step (`Admit` or `Deny`).
fn request(counter: &mut Counter, shared: &mut Shared, now: u64, limits: &Limits) -> Step {
    match counter.step(now, limits) {
        Step::Lease { window, take } => {
            let granted = shared.lease(window, take, limits.cap());
            counter.granted(now, limits, window, granted)
        }
        step => step,
    }
}

const LIMITS: Limits = Limits { requests_per_second: 10, burst: 20 };

#[test]
fn the_window_and_cap_follow_rate_and_burst() {
    assert_eq!((LIMITS.window_secs(), LIMITS.cap(), LIMITS.lease()), (2, 20, 1));
    let default = Limits::default();
    assert_eq!((default.window_secs(), default.cap(), default.lease()), (10, 500, 25));
    assert!(Limits { requests_per_second: 0, burst: 1 }.check().is_err());
    assert!(Limits { requests_per_second: 10, burst: 5 }.check().is_err(), "burst below the rate");
    assert!(default.check().is_ok());
}

#[test]
fn a_flood_on_many_instances_gets_the_cap_and_one_request_per_instance_per_window() {
    let mut shared = Shared::default();
    let mut instances = vec![Counter::default(); 8];
    for window in 0..5u64 {
        let now = window * LIMITS.window_secs();
        let admitted = (0..400)
            .filter(|i| request(&mut instances[i % 8], &mut shared, now, &LIMITS) == Step::Admit)
            .count() as u64;
        assert_eq!(admitted, LIMITS.cap() + 8, "window {window}");
    }
}

#[test]
fn an_idp_sending_now_and_then_costs_no_lease() {
    let mut shared = Shared::default();
    let mut instance = Counter::default();
    // One request every 10 seconds for ten minutes, on the default limits.
    for n in 0..60u64 {
        assert_eq!(request(&mut instance, &mut shared, 1_000 + 10 * n, &Limits::default()), Step::Admit);
    }
    assert_eq!(shared.leases, 0);
    // One a second: one lease per 10-second window.
    for n in 0..60u64 {
        assert_eq!(request(&mut instance, &mut shared, 5_000 + n, &Limits::default()), Step::Admit);
    }
    assert_eq!(shared.leases, 6);
}

#[test]
fn a_denied_request_is_told_when_the_next_window_starts() {
    let mut shared = Shared::default();
    let mut instance = Counter::default();
    let now = 1_000; // the start of window 500
    let admitted = (0..100).take_while(|_| request(&mut instance, &mut shared, now, &LIMITS) == Step::Admit).count();
    assert_eq!(admitted as u64, LIMITS.cap() + 1);
    assert_eq!(request(&mut instance, &mut shared, now + 1, &LIMITS), Step::Deny { retry_after: 1 });
    let leases = shared.leases;
    assert_eq!(request(&mut instance, &mut shared, now + 1, &LIMITS), Step::Deny { retry_after: 1 });
    assert_eq!(shared.leases, leases, "a full window is not asked again");
    assert_eq!(request(&mut instance, &mut shared, now + 2, &LIMITS), Step::Admit, "the next window admits");
}

#[test]
fn a_lease_answered_after_its_window_ended_counts_in_the_new_one() {
    let mut instance = Counter::default();
    assert_eq!(instance.step(0, &LIMITS), Step::Admit);
    let Step::Lease { window, .. } = instance.step(0, &LIMITS) else { panic!("a lease") };
    assert_eq!(instance.granted(2, &LIMITS, window, 0), Step::Admit, "window 1's first request");
}

#[test]
fn one_integration_over_its_limit_leaves_another_alone() {
    let limiter = Limiter::default();
    let (mut a, mut b) = (Shared::default(), Shared::default());
    let run = |iid: &str, shared: &mut Shared, now: u64| match limiter.step(iid, now, &LIMITS) {
        Step::Lease { window, take } => {
            let granted = shared.lease(window, take, LIMITS.cap());
            limiter.granted(iid, now, &LIMITS, window, granted)
        }
        step => step,
    };
    let denied_a = (0..100).filter(|_| run("a", &mut a, 10) != Step::Admit).count();
    let denied_b = (0..5).filter(|_| run("b", &mut b, 10) != Step::Admit).count();
    assert_eq!((denied_a, denied_b), (100 - 21, 0));
}

#[test]
fn concurrent_leases_of_one_instance_serve_each_other() {
    let mut shared = Shared::default();
    let mut instance = Counter::default();
    assert_eq!(instance.step(0, &Limits::default()), Step::Admit);
    // 49 requests in flight at once, each leasing 25 before any answer came back.
    let leases: Vec<Step> = (0..49).map(|_| instance.step(0, &Limits::default())).collect();
    let mut admitted = 0;
    for step in leases {
        let Step::Lease { window, take } = step else { panic!("{step:?}") };
        let granted = shared.lease(window, take, Limits::default().cap());
        if instance.granted(0, &Limits::default(), window, granted) == Step::Admit {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 49, "the window's 500 are held by this instance: all pass");
}

#[test]
fn either_key_may_be_left_out() {
    let parse = |v: serde_json::Value| serde_json::from_value::<Limits>(v);
    assert_eq!(parse(serde_json::json!({})).unwrap(), Limits::default());
    assert_eq!(
        parse(serde_json::json!({"requests_per_second": 100})).unwrap(),
        Limits { requests_per_second: 100, burst: 1000 }
    );
    assert_eq!(parse(serde_json::json!({"burst": 60})).unwrap().requests_per_second, 50);
    assert!(parse(serde_json::json!({"rate": 5})).is_err(), "a misspelt key is refused");
}
