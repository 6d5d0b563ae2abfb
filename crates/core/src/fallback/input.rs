//! What the fallback refuses before it stores or forwards anything: a body over the ALB's 1 MB
//! Lambda limit (413), a body that is not JSON on a route declaring JSON bodies (400), and an
//! `Idempotency-Key` that cannot be a key (400).
//!
//! "The maximum size of the request body that you can send to a Lambda function is 1 MB"
//! (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html>);
//! the load balancer refuses a larger one itself, so the check here covers other callers
//! (`cargo lambda invoke`, a function URL) and keeps the queue's bound whatever the caller.

/// The largest request body the fallback takes: 1 MiB, the ALB's Lambda target limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A request refused as it arrived; nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// 413.
    #[error("the body is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// 400.
    #[error("the route takes JSON bodies and this one is not JSON: {reason}")]
    NotJson {
        /// serde's reason.
        reason: String,
    },
    /// 400.
    #[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
    BadIdempotencyKey,
    /// 400: the body was marked base64 and is not.
    #[error("the body is marked base64-encoded and does not decode")]
    BadEncoding,
}

impl InputError {
    /// The HTTP status the fallback answers.
    pub fn status(&self) -> u16 {
        match self {
            InputError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Checks a body against the size limit and, when the route declares JSON bodies, that it is
/// one JSON value. An empty body has no document to decode and passes (a `DELETE` on a JSON
/// route).
pub fn check_body(body: &[u8], json: bool) -> Result<(), InputError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(InputError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    if json && !body.is_empty() {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| InputError::NotJson {
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// Checks a client's `Idempotency-Key` value: 1 to 255 printable ASCII characters.
pub fn check_idempotency_key(key: &[u8]) -> Result<&str, InputError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
    {
        return Err(InputError::BadIdempotencyKey);
    }
    std::str::from_utf8(key).map_err(|_| InputError::BadIdempotencyKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_over_one_megabyte_and_non_json_on_json_routes_are_refused() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let limit = vec![b'1'; MAX_BODY_BYTES];
        for (body, json, want) in [
            (&b"{\"a\":1}"[..], true, None),
            (b"[1, 2]", true, None),
            (b"{\"a\":", true, Some(400)),
            (b"", true, None),
            (b"not json", true, Some(400)),
            (b"not json", false, None),
            (b"", false, None),
            (&limit[..], false, None),
            (&big[..], false, Some(413)),
            (&big[..], true, Some(413)),
        ] {
            assert_eq!(
                check_body(body, json).err().map(|e| e.status()),
                want,
                "{} bytes, json {json}",
                body.len()
            );
        }
    }

    #[test]
    fn an_idempotency_key_is_short_printable_ascii() {
        assert_eq!(check_idempotency_key(b"k-1"), Ok("k-1"));
        assert!(check_idempotency_key(b"").is_err());
        assert!(check_idempotency_key(&[b'k'; 256]).is_err());
        assert!(check_idempotency_key(b"a\nb").is_err());
        assert!(check_idempotency_key("é".as_bytes()).is_err());
    }
}
