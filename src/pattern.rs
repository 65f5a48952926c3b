//! The admin's patterns: `*` globbing for variable names and image allow-list entries.
//! Parsed once, when the config is loaded, so a pattern in use is always a valid one.

use std::fmt;

use serde::Deserialize;

use crate::image_ref::ImageRef;

/// An allow-list entry; `*` matches any run of characters, `/` included. It is matched against
/// both the normalized and the familiar form, so `qdock/*` and `docker.io/qdock/*` both work.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct ImagePattern(String);

impl ImagePattern {
    pub fn parse(pattern: &str) -> Result<ImagePattern, String> {
        let ok = !pattern.is_empty()
            && pattern
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "/:@._-*".contains(c));
        if !ok {
            return Err(format!(
                "{pattern:?} is not an image pattern (lowercase reference with * wildcards)"
            ));
        }
        Ok(ImagePattern(pattern.to_string()))
    }

    pub fn matches(&self, image: &ImageRef) -> bool {
        glob_match(&self.0, &image.normalized()) || glob_match(&self.0, &image.familiar())
    }
}

impl TryFrom<String> for ImagePattern {
    type Error = String;

    fn try_from(pattern: String) -> Result<Self, String> {
        ImagePattern::parse(&pattern)
    }
}

impl fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` globbing without backtracking blow-up: greedy match of each literal piece in order.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if pieces.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob_match("a*", "abc"));
        assert!(glob_match("*c", "abc"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*b*c", "a-c"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("*", ""));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn image_patterns_are_lowercase_references() {
        assert!(ImagePattern::parse("docker.io/qdock/*:1").is_ok());
        for bad in ["", "UPPER/case", "a b", "x;y"] {
            assert!(ImagePattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
