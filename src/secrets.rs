//! Secrets, injected: webhook signing keys and source tokens come from environment variables
//! whose *names* the settings give.
//!
//! Settings never hold a secret (the file refuses keys that look like one); they name the
//! variable to read. The runner and the command line read it through [`Secrets`], which the
//! binary builds from the process environment and tests build from a map, so no test has to
//! change its own process's environment.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Where secret values come from.
#[derive(Clone)]
pub struct Secrets {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Env,
    Map(Arc<BTreeMap<String, String>>),
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print values; names only.
        match &self.source {
            Source::Env => f.write_str("Secrets(environment)"),
            Source::Map(m) => f.debug_tuple("Secrets").field(&m.keys().collect::<Vec<_>>()).finish(),
        }
    }
}

impl Default for Secrets {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Secrets {
    /// Secrets read from the process environment.
    pub fn from_env() -> Self {
        Self { source: Source::Env }
    }

    /// Secrets from fixed name → value pairs; for tests.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self { source: Source::Map(Arc::new(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())) }
    }

    /// The value of variable `name`; `None` when it is unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match &self.source {
            Source::Env => std::env::var(name).ok(),
            Source::Map(m) => m.get(name).cloned(),
        };
        v.filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::Secrets;

    #[test]
    fn maps_answer_and_debug_hides_values() {
        let s = Secrets::from_pairs([("HOOK_KEY", "s3cret"), ("EMPTY", "")]);
        assert_eq!(s.get("HOOK_KEY").as_deref(), Some("s3cret"));
        assert_eq!(s.get("EMPTY"), None);
        assert_eq!(s.get("OTHER"), None);
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
