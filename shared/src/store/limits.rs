//! The shared request count of an integration's limit window (`crate::limits`): one row per
//! window in the integration's partition, gone by TTL a minute after the window (and with the
//! integration's purge). A lease is one conditional UpdateItem; two instances leasing at once
//! are serialised by DynamoDB, so the count never passes the cap.

use super::{Store, StoreError, key, keys, n};

impl Store {
    /// Takes `take` tokens from window `window` (or, when fewer are left, one); returns how
    /// many were granted (0: the window is full).
    pub async fn lease_limit(
        &self,
        iid: &str,
        window: u64,
        window_secs: u64,
        take: u64,
        cap: u64,
    ) -> Result<u64, StoreError> {
        let expires = (window + 1) * window_secs + 60;
        for take in [take, 1] {
            if take > cap {
                continue;
            }
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::integration_pk(iid), keys::limit_sk(window))))
                .update_expression("ADD used :take SET #ttl = :ttl")
                .condition_expression("attribute_not_exists(used) OR used <= :room")
                .expression_attribute_names("#ttl", keys::TTL_ATTRIBUTE)
                .expression_attribute_values(":take", n(take))
                .expression_attribute_values(":room", n(cap - take))
                .expression_attribute_values(":ttl", n(expires))
                .send()
                .await;
            if StoreError::conditional("UpdateItem", out)?.is_some() {
                return Ok(take);
            }
            if take == 1 {
                break;
            }
        }
        Ok(0)
    }
}
