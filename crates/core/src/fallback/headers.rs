//! The header names and paths the fallback reads and writes, and which headers it passes on.
//!
//! Hop-by-hop headers are meant for one connection and are not forwarded (RFC 9110 §7.6.1,
//! <https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1>): `Connection`, every header it
//! lists, and `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`.
//! `Content-Length` is framing the client recomputes for the body it sends. Everything else,
//! `Host` and `X-Forwarded-*` included, goes on as received.

/// The client's idempotency key; sent with every replay (generated when the client sent none).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Seconds to wait before trying again, on every 503 the fallback gives.
pub const RETRY_AFTER: &str = "retry-after";
/// Where a queued write's receipt is read.
pub const LOCATION: &str = "location";
/// The policy the fallback applied (`forward`, `queue`, `respond`, `reject`).
pub const X_COSTOP_FALLBACK: &str = "x-costop-fallback";
/// On a replayed request: the receipt it replays, so the service can tell a replay.
pub const X_COSTOP_RECEIPT: &str = "x-costop-receipt";
/// `Content-Type` of the fallback's own JSON answers.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The path under which the fallback serves receipts: `/_costop/receipts/{id}`.
pub const RECEIPTS_PREFIX: &str = "/_costop/receipts/";

/// The hop-by-hop headers of RFC 9110 §7.6.1, plus `Content-Length`.
const NOT_FORWARDED: [&str; 7] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The headers to pass on from `headers` (lower-case names): without the hop-by-hop ones,
/// including those the `Connection` header lists.
pub fn end_to_end<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> Vec<(&'a str, &'a str)> {
    let listed: Vec<String> = headers
        .clone()
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    headers
        .into_iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_lowercase();
            !NOT_FORWARDED.contains(&n.as_str()) && !listed.contains(&n)
        })
        .collect()
}

/// The receipt id in a receipt path (`/_costop/receipts/{id}`), if `path` is one.
pub fn receipt_path_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix(RECEIPTS_PREFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The path of a receipt.
pub fn receipt_location(id: &str) -> String {
    format!("{RECEIPTS_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_lists_are_dropped() {
        let h = [
            ("Host", "shop.example.com"),
            ("Connection", "keep-alive, X-Private"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "close"),
            ("Content-Length", "12"),
            ("x-private", "1"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "k1"),
        ];
        let kept: Vec<&str> = end_to_end(h.iter().copied())
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            kept,
            [
                "Host",
                "X-Forwarded-For",
                "X-Forwarded-Proto",
                "Content-Type",
                "Idempotency-Key"
            ]
        );
    }

    #[test]
    fn a_receipt_path_names_one_id() {
        assert_eq!(receipt_path_id("/_costop/receipts/abc"), Some("abc"));
        assert_eq!(receipt_path_id("/_costop/receipts/"), None);
        assert_eq!(receipt_path_id("/_costop/receipts/a/b"), None);
        assert_eq!(receipt_path_id("/orders"), None);
        assert_eq!(receipt_location("abc"), "/_costop/receipts/abc");
    }
}
