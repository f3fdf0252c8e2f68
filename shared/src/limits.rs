//! Per-integration request limits (docs/operations.md "Limits"): the decision rules, pure.
//!
//! An integration may take `cap = requests_per_second × window` SCIM requests in each window
//! of `window = ⌈burst / requests_per_second⌉` seconds, counted across every warm API
//! instance in one DynamoDB row per window (`store::limits`). An instance does not count each
//! request there: it leases tokens in blocks (`lease`, a twentieth of the window's cap), so a
//! busy integration costs one conditional write per block. The first request an instance
//! takes for an integration in a window is admitted without asking, so an IdP sending one
//! change now and then costs no call at all; the price is that up to one request per busy
//! instance per window may pass above `cap`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Okta and Entra stay well below this: Entra gallery apps are asked to sustain 25 requests
/// per second per tenant (docs/idp-quirks.md); Okta backs off on 429 by `Retry-After`. The
/// burst makes a 10-second window: an initial sync's first seconds pass whole, and an IdP
/// sending one change a second costs one lease per 10 seconds.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 50;
pub const DEFAULT_BURST: u32 = 500;

/// `limits: { "requests_per_second", "burst" }` of an integration.
/// Either key may be left out: the rate defaults to 50, the burst to ten seconds of the rate
/// (at least 500 when the rate is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, from = "LimitsJson")]
pub struct Limits {
    pub requests_per_second: u32,
    pub burst: u32,
}

/// `limits` as written, keys optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsJson {
    requests_per_second: Option<u32>,
    burst: Option<u32>,
}

impl From<LimitsJson> for Limits {
    fn from(j: LimitsJson) -> Self {
        let requests_per_second = j.requests_per_second.unwrap_or(DEFAULT_REQUESTS_PER_SECOND);
        Limits { requests_per_second, burst: j.burst.unwrap_or(requests_per_second.saturating_mul(10)) }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { requests_per_second: DEFAULT_REQUESTS_PER_SECOND, burst: DEFAULT_BURST }
    }
}

impl Limits {
    /// Why these limits cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), &'static str> {
        if !(1..=10_000).contains(&self.requests_per_second) {
            return Err("limits.requests_per_second must be from 1 to 10000");
        }
        if self.burst < self.requests_per_second || self.burst > self.requests_per_second.saturating_mul(60) {
            return Err("limits.burst must be at least requests_per_second and at most 60 times it");
        }
        Ok(())
    }

    /// The counting window, in seconds.
    pub fn window_secs(&self) -> u64 {
        u64::from(self.burst.div_ceil(self.requests_per_second.max(1))).max(1)
    }

    /// Requests each window admits across all instances.
    pub fn cap(&self) -> u64 {
        u64::from(self.requests_per_second) * self.window_secs()
    }

    /// Tokens taken from the shared count at a time.
    pub fn lease(&self) -> u64 {
        (self.cap() / 20).max(1)
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Admit,
    /// Take `take` tokens from window `window`'s shared count, then call [`Counter::granted`].
    Lease {
        window: u64,
        take: u64,
    },
    /// Over the limit: `retry_after` seconds until the next window.
    Deny {
        retry_after: u64,
    },
}

/// One instance's view of one integration.
#[derive(Debug, Default, Clone)]
pub struct Counter {
    window: u64,
    leased: u64,
    /// Requests seen in this window (the first passes without a lease).
    seen: u64,
    /// The shared count said this window is full.
    full: bool,
}

impl Counter {
    fn roll(&mut self, window: u64) {
        if window != self.window {
            *self = Counter { window, ..Counter::default() };
        }
    }

    fn retry_after(&self, now: u64, limits: &Limits) -> u64 {
        ((self.window + 1) * limits.window_secs()).saturating_sub(now).max(1)
    }

    /// The step for one request at `now` (unix seconds).
    pub fn step(&mut self, now: u64, limits: &Limits) -> Step {
        self.roll(now / limits.window_secs());
        self.seen += 1;
        if self.seen == 1 {
            return Step::Admit;
        }
        if self.leased > 0 {
            self.leased -= 1;
            return Step::Admit;
        }
        if self.full {
            return Step::Deny { retry_after: self.retry_after(now, limits) };
        }
        Step::Lease { window: self.window, take: limits.lease() }
    }

    /// The lease's answer: `granted` tokens (0: the window is full).
    pub fn granted(&mut self, now: u64, limits: &Limits, window: u64, granted: u64) -> Step {
        self.roll(now / limits.window_secs());
        if window != self.window {
            // The lease was for a window that has passed: this request opens the new one.
            return self.step(now, limits);
        }
        if granted == 0 && self.leased > 0 {
            // Concurrent requests of this instance leased at once (an instance serving several
            // at a time, as locally): the window is full, but what they took serves this one.
            self.full = true;
            self.leased -= 1;
            return Step::Admit;
        }
        if granted == 0 {
            self.full = true;
            return Step::Deny { retry_after: self.retry_after(now, limits) };
        }
        self.leased += granted - 1;
        Step::Admit
    }
}

/// Every integration's [`Counter`] in this instance.
#[derive(Debug, Default)]
pub struct Limiter {
    counters: Mutex<HashMap<String, Counter>>,
}

impl Limiter {
    pub fn step(&self, iid: &str, now: u64, limits: &Limits) -> Step {
        self.with(iid, |c| c.step(now, limits))
    }

    pub fn granted(&self, iid: &str, now: u64, limits: &Limits, window: u64, granted: u64) -> Step {
        self.with(iid, |c| c.granted(now, limits, window, granted))
    }

    fn with(&self, iid: &str, f: impl FnOnce(&mut Counter) -> Step) -> Step {
        // A poisoned lock only means another request panicked mid-update: the counts stay usable.
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        f(counters.entry(iid.to_string()).or_default())
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
