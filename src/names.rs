//! Names the settings give: of webhooks and sources (they appear in lake paths and run records),
//! and of the environment variables that hold their secrets (so a key pasted where a variable's
//! name belongs is refused, never stored).

/// Whether `s` is a usable name (letters, digits, `_`, `-`).
pub fn valid_name(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{s}` may only hold letters, digits, `_` and `-`"));
    }
    Ok(())
}

/// Whether `s` looks like an environment variable's name (so a key pasted there is refused).
pub fn valid_env_name(s: &str) -> std::result::Result<(), String> {
    let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!("`{s}` is not the name of an environment variable (A–Z, 0–9, _)"));
    }
    Ok(())
}
