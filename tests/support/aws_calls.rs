//! Counts the AWS API calls a client makes (an SDK interceptor), so tests can report them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The suffix of a limit lease's operation name: `UpdateItem(limit lease)`.
pub const LEASE: &str = "(limit lease)";

#[derive(Debug, Clone, Default)]
pub struct Counter {
    count: Arc<AtomicUsize>,
    /// The operations, in order (`Query`, `TransactWriteItems`, `SendMessageBatch`…).
    operations: Arc<Mutex<Vec<String>>>,
    /// Each call's request body (the AWS JSON protocol), for capacity estimates.
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Counter {
    pub fn get(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The calls made since `since` were counted: operation and request body.
    pub fn calls_since(&self, since: usize) -> Vec<(String, Vec<u8>)> {
        let ops = self.operations.lock().expect("lock").iter().skip(since).cloned().collect::<Vec<_>>();
        let bodies = self.bodies.lock().expect("lock").iter().skip(since).cloned().collect::<Vec<_>>();
        ops.into_iter().zip(bodies).collect()
    }

    /// The operations made since `since` calls were counted.
    pub fn operations_since(&self, since: usize) -> Vec<String> {
        self.operations.lock().expect("lock").iter().skip(since).cloned().collect()
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Once per HTTP attempt sent to AWS (retries count too).
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The AWS JSON protocols name the operation in `X-Amz-Target`: `DynamoDB_20120810.Query`.
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("unknown");
        let mut operation = target.rsplit('.').next().unwrap_or(target).to_string();
        // A limit lease (`store::limits`) is named apart: its cost is shared by the requests
        // of a window, not one change's.
        let body = ctx.request().body().bytes().unwrap_or_default();
        if operation == "UpdateItem" && body.windows(6).any(|w| w == b"LIMIT#") {
            operation.push_str(LEASE);
        }
        // Both under the operations' lock, so that concurrent calls keep their pairs.
        let mut operations = self.operations.lock().expect("lock");
        self.bodies.lock().expect("lock").push(body.to_vec());
        operations.push(operation);
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
