//! Regular expressions clients send (a KIP-848 subscription, a
//! ListTransactions filter): RE2 syntax, as Kafka's RE2J takes them,
//! matched against a whole name, and bounded in length and compiled size.

/// Longest pattern taken, and the most memory its compiled form may hold.
pub const PATTERN_BYTES_MAX: usize = 4096;
const COMPILED_BYTES_MAX: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("the regex is over {PATTERN_BYTES_MAX} bytes")]
    TooLong,
    #[error("regex {pattern:?}: {reason}")]
    Invalid { pattern: String, reason: String },
}

/// `pattern` compiled to match a whole name.
pub fn whole_match(pattern: &str) -> Result<regex::Regex, PatternError> {
    if pattern.len() > PATTERN_BYTES_MAX {
        return Err(PatternError::TooLong);
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(COMPILED_BYTES_MAX)
        .build()
        .map_err(|e| PatternError::Invalid {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_whole_names_only() {
        let p = whole_match("orders-.*").unwrap();
        assert!(p.is_match("orders-eu"));
        assert!(!p.is_match("old-orders-eu"));
        let alternatives = whole_match("a|b").unwrap();
        assert!(alternatives.is_match("a") && !alternatives.is_match("ab"));
        assert!(matches!(
            whole_match("("),
            Err(PatternError::Invalid { .. })
        ));
        let long = "a".repeat(PATTERN_BYTES_MAX + 1);
        assert!(matches!(whole_match(&long), Err(PatternError::TooLong)));
    }
}
