//! "Test connection" (docs/contract.md "Owners and audit"): one harmless read of the app through
//! the integration's connector, answered as data for the console. Nothing is written.

use std::time::Instant;

use serde_json::json;

use super::Reply;
use super::audit::Actor;
use crate::connector::{self, ConnectorError, OutboundClients};
use crate::error::{ScimError, ScimResult};
use crate::secrets::Secrets;
use crate::store::Store;

/// `POST /admin/integrations/{id}/test`: reads the first page of the app's accounts (or, when
/// the connector cannot list them, its roles). Always 200 `{ "ok", "call", "detail", "ms" }`:
/// `ok` is `null` when the connector has no read call to try (webhook robots).
pub async fn test(
    store: &Store,
    actor: &Actor,
    secrets: &Secrets,
    outbound: &OutboundClients,
    id: &str,
) -> ScimResult<Reply> {
    actor.require_reach(id)?;
    let record = store.get_integration(id).await?.ok_or_else(|| ScimError::not_found("no such integration"))?;
    let config = crate::integration::IntegrationConfig::from_json(record.config_json())?;
    let started = Instant::now();
    let answer = |ok: Option<bool>, call: &str, detail: String| {
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(integration_id = %id, call, ok, ms, "connection tested");
        Reply::json(200, json!({ "ok": ok, "call": call, "detail": detail, "ms": ms }))
    };
    let failed = |call: &str, e: ConnectorError| {
        let detail = match e {
            ConnectorError::Retryable { message, .. } | ConnectorError::Permanent { message, .. } => message,
        };
        answer(Some(false), call, detail)
    };
    let built =
        match connector::for_integration(&config.connector, config.allow_private_network, outbound, secrets).await {
            Ok(c) => c,
            Err(e) => return Ok(failed("connector", e)),
        };
    match built.list_accounts(None).await {
        Ok(Some(page)) => {
            let more = if page.next.is_some() { " (more pages follow)" } else { "" };
            return Ok(answer(
                Some(true),
                "list_users",
                format!("the app listed {} account(s){more}", page.accounts.len()),
            ));
        }
        Ok(None) => {}
        Err(e) => return Ok(failed("list_users", e)),
    }
    match built.list_roles().await {
        Ok(Some(roles)) => Ok(answer(Some(true), "list_roles", format!("the app listed {} role(s)", roles.len()))),
        Ok(None) => Ok(answer(
            None,
            "none",
            format!(
                "the {} connector has no read call to try: configure connector.list_users or list_roles",
                config.connector.kind()
            ),
        )),
        Err(e) => Ok(failed("list_roles", e)),
    }
}
