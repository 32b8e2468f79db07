//! Durations in settings, written as people write them: `"10s"`, `"500ms"`, `"2m"`, `"1h 30m"`.
//!
//! Use as `#[serde(with = "crate::period::duration")]` on a `std::time::Duration` field.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a duration as `humantime` prints it (`1m 30s`).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Reads `"90s"`, `"5m"`, `"2h"`, `"1h 30m"`, `"250ms"`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration like 500ms, 10s or 2m: {e}")))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use std::time::Duration;

    #[derive(Serialize, Deserialize)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
    }

    #[test]
    fn round_trips_and_refuses_nonsense() {
        let t: T = toml::from_str("d = \"1m 30s\"").unwrap();
        assert_eq!(t.d, Duration::from_secs(90));
        assert_eq!(toml::to_string(&t).unwrap().trim(), "d = \"1m 30s\"");
        assert!(toml::from_str::<T>("d = \"soon\"").is_err());
    }
}
