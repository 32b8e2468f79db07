//! Webhook signatures: HMAC-SHA256 over the timestamp, the delivery id and the body.
//!
//! Every attempt of a delivery is signed when it is sent, under the webhook's key:
//!
//! ```text
//! X-Shelfcast-Timestamp: 1775008800          Unix seconds (UTC) when the attempt was sent
//! X-Shelfcast-Delivery:  <delivery id>       the same for every attempt of one delivery
//! X-Shelfcast-Signature: sha256=<hex>        HMAC-SHA256 of "<timestamp>.<delivery id>.<body>"
//! ```
//!
//! The signed message is the timestamp header's value, a `.`, the delivery id, a `.`, and the
//! raw body bytes. A receiver recomputes it from the headers it got, compares in constant time,
//! refuses a timestamp further than its replay window ([`REPLAY_WINDOW`] is the one documented)
//! from its own clock, and acknowledges a delivery id it has already acted on without acting
//! again, remembering ids for at least the window. So a captured request cannot be replayed
//! after the window, nor acted on twice within it, and neither the id nor the time can be
//! changed without the key. [`verify`] is that check, less the memory of ids.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The replay window a receiver is advised to keep: a timestamp further than this from its
/// clock is refused.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);

/// What a receiver got: the three signed headers' values and the raw body.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// `X-Shelfcast-Timestamp`.
    pub timestamp: &'a str,
    /// `X-Shelfcast-Delivery`.
    pub delivery_id: &'a str,
    /// `X-Shelfcast-Signature`.
    pub signature: &'a str,
    /// The body, as received.
    pub body: &'a [u8],
}

/// Why a receiver refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The timestamp header is not a whole number of seconds.
    #[error("the timestamp `{0}` is not a number of Unix seconds")]
    Timestamp(String),
    /// The signature header is not `sha256=<hex>`, or not the HMAC of the message.
    #[error("the signature does not match the timestamp, delivery id and body")]
    Mismatch,
    /// The timestamp is outside the replay window.
    #[error("the timestamp is {off_s} s from the receiver's clock, outside the replay window of {window_s} s")]
    Stale {
        /// Seconds between the timestamp and the receiver's clock.
        off_s: i64,
        /// The window, in seconds.
        window_s: u64,
    },
}

fn mac(key: &[u8], timestamp: &str, delivery_id: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(delivery_id.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<delivery_id>.<body>" under key>`, with the
/// timestamp in Unix seconds.
pub fn signature(key: &[u8], timestamp: i64, delivery_id: &str, body: &[u8]) -> String {
    let mac = mac(key, &timestamp.to_string(), delivery_id, body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A receiver's check: the signature matches the timestamp, delivery id and body under `key`
/// (compared in constant time), and the timestamp lies within `window` of `now`.
pub fn verify(key: &[u8], got: &Received<'_>, now: DateTime<Utc>, window: Duration) -> Result<(), Rejected> {
    let ts: i64 = got.timestamp.parse().map_err(|_| Rejected::Timestamp(got.timestamp.to_string()))?;
    let sig = got.signature.strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()).ok_or(Rejected::Mismatch)?;
    // The exact header text is what was signed, so it is hashed as received.
    mac(key, got.timestamp, got.delivery_id, got.body).verify_slice(&sig).map_err(|_| Rejected::Mismatch)?;
    let off_s = now.timestamp().saturating_sub(ts);
    if off_s.unsigned_abs() > window.as_secs() {
        return Err(Rejected::Stale { off_s, window_s: window.as_secs() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_delivery_and_body_and_verifies_within_the_window() {
        // The message is "<timestamp>.<delivery id>.<body>", hashed as one string.
        let sig = signature(b"Jefe", 1, "2", b"what do ya want for nothing?");
        let direct = {
            let mut m = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            m.update(b"1.2.what do ya want for nothing?");
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        };
        assert_eq!(sig, direct);

        let now = DateTime::from_timestamp(1_775_008_800, 0).unwrap();
        let sig = signature(b"key", now.timestamp(), "run-1", b"{}");
        let ts = now.timestamp().to_string();
        let got = Received { timestamp: &ts, delivery_id: "run-1", signature: &sig, body: b"{}" };
        assert_eq!(verify(b"key", &got, now, REPLAY_WINDOW), Ok(()));
        assert_eq!(verify(b"other", &got, now, REPLAY_WINDOW), Err(Rejected::Mismatch));
        let later = now + chrono::Duration::seconds(301);
        assert_eq!(verify(b"key", &got, later, REPLAY_WINDOW), Err(Rejected::Stale { off_s: 301, window_s: 300 }));
        let earlier = now - chrono::Duration::seconds(300);
        assert_eq!(verify(b"key", &got, earlier, REPLAY_WINDOW), Ok(()));
        // Neither the id nor the time nor the body can change under the same signature.
        let other_id = Received { delivery_id: "run-2", ..got };
        assert_eq!(verify(b"key", &other_id, now, REPLAY_WINDOW), Err(Rejected::Mismatch));
        let ts2 = (now.timestamp() + 1).to_string();
        let other_ts = Received { timestamp: &ts2, ..got };
        assert_eq!(verify(b"key", &other_ts, now, REPLAY_WINDOW), Err(Rejected::Mismatch));
        let other_body = Received { body: b"{ }", ..got };
        assert_eq!(verify(b"key", &other_body, now, REPLAY_WINDOW), Err(Rejected::Mismatch));
        let bad = Received { timestamp: "soon", ..got };
        assert!(matches!(verify(b"key", &bad, now, REPLAY_WINDOW), Err(Rejected::Timestamp(_))));
        let md5 = Received { signature: "md5=00", ..got };
        assert_eq!(verify(b"key", &md5, now, REPLAY_WINDOW), Err(Rejected::Mismatch));
    }
}
