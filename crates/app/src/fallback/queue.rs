//! `queue`: persist the write, durably and whole, before answering `202 Accepted` with its
//! receipt (JSON) and `Location: /_costop/receipts/{id}`; and serve those receipts. A repeated
//! `Idempotency-Key` returns the first write's receipt and stores nothing; a full queue answers
//! 503 with `Retry-After` and stores nothing. A write without a key gets one, stored with it, so
//! every replay of it carries the same key. Header values that are not text are not kept.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use costop_core::fallback::{QueuedWrite, Receipt, headers};
use http::{HeaderValue, Method, StatusCode};

use super::forward::end_to_end;
use super::retry::{Attempt, within_budget};
use super::{Fallback, Served, json, retry_later};
use crate::function::error_chain;
use crate::ports::{Enqueued, FallbackPorts, PortError, WriteQueue};

/// A receipt as JSON, with where to read it.
fn receipt_body(r: &Receipt) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["location"] = serde_json::Value::String(headers::receipt_location(&r.id));
    v
}

impl<W: FallbackPorts> Fallback<W> {
    pub(super) async fn queue(
        &self,
        request: http::Request<Bytes>,
        served: &mut Served,
    ) -> http::Response<Bytes> {
        let client_key = request
            .headers()
            .get(headers::IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let write = QueuedWrite {
            receipt_id: uuid::Uuid::new_v4().simple().to_string(),
            path: request.uri().path().to_owned(),
            seq: 0,
            method: request.method().as_str().to_owned(),
            query: request.uri().query().map(str::to_owned),
            headers: end_to_end(request.headers())
                .iter()
                .filter(|(n, _)| n.as_str() != headers::IDEMPOTENCY_KEY)
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body: request.body().to_vec(),
            idempotency_key: client_key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            client_key: client_key.is_some(),
            queued_at: Utc::now(),
            attempts: 0,
            last_error: None,
            // The queue counts it on a shard of its choosing.
            depth_shard: 0,
        };
        let enqueued = self.enqueue(write, served).await;
        let receipt = match enqueued {
            Ok(Enqueued::Queued(r)) => r,
            Ok(Enqueued::Duplicate(r)) => {
                served.duplicate = true;
                r
            }
            Ok(Enqueued::Full) => {
                served.gave_up = true;
                tracing::warn!(
                    max_depth = self.config.queue_max_depth,
                    "the queue is full; write refused"
                );
                return retry_later(&self.config, "the write queue is full");
            }
            Err(e) => {
                served.gave_up = true;
                tracing::error!(error = %error_chain(&e), "queueing the write failed; nothing stored");
                return retry_later(&self.config, "the write could not be queued");
            }
        };
        served.receipt = Some(receipt.id.clone());
        let mut r = json(StatusCode::ACCEPTED, &receipt_body(&receipt));
        if let Ok(v) = HeaderValue::from_str(&headers::receipt_location(&receipt.id)) {
            r.headers_mut().insert(headers::LOCATION, v);
        }
        r
    }

    /// Queue `write`, again with backoff while the table answers a transient error, within the
    /// forward's budget. DynamoDB cancels a transaction that meets another on the same item
    /// (`TransactionConflict`, as concurrent writes on the queue's depth counter do) and asks
    /// the caller to retry; a retry of a write that did land is answered as its duplicate, by
    /// its idempotency key.
    async fn enqueue(
        &self,
        write: QueuedWrite,
        served: &mut Served,
    ) -> Result<Enqueued, PortError> {
        let budget = Duration::from_millis(self.config.fallback_forward_budget_ms);
        let tried = within_budget(
            self.config.fallback_backoff,
            budget,
            &write.receipt_id,
            |_| {
                let write = write.clone();
                async move {
                    match self
                        .world
                        .queue()
                        .enqueue(write, self.config.queue_max_depth)
                        .await
                    {
                        Ok(enqueued) => Attempt::Done(enqueued),
                        Err(e @ PortError::Transient { .. }) => {
                            tracing::debug!(error = %error_chain(&e), "queueing the write again");
                            Attempt::Again(e)
                        }
                        Err(e) => Attempt::Stop(e),
                    }
                }
            },
        )
        .await;
        served.attempts = Some(tried.attempts);
        tried.result
    }

    /// `GET /_costop/receipts/{id}`: the receipt, 404 for an unknown id.
    pub(super) async fn receipt(&self, request: &http::Request<Bytes>) -> http::Response<Bytes> {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": "receipts are read with GET"}),
            );
        }
        let not_found = || {
            json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "no such receipt"}),
            )
        };
        let Some(id) = headers::receipt_path_id(request.uri().path()) else {
            return not_found();
        };
        match self.world.queue().receipt(id).await {
            Ok(Some(r)) => json(StatusCode::OK, &receipt_body(&r)),
            Ok(None) => not_found(),
            Err(e) => {
                tracing::error!(receipt = %id, error = %error_chain(&e), "reading the receipt failed");
                retry_later(&self.config, "the receipt could not be read")
            }
        }
    }
}
