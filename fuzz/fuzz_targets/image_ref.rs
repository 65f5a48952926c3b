//! `ImageRef::parse` on anything: it never panics, and what it accepts normalizes to a
//! reference that is harmless on a command line and in an API path, parses back to the same
//! image, and whose familiar form (also matched by the allow list) names the same image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qdock::config::ImageConfig;
use qdock::image_ref::ImageRef;
use qdock::pattern::{ImagePattern, glob_match};
use qdock::policy::check_image;

fn harmless(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:@._-".contains(c))
}

fuzz_target!(|input: (&str, &str)| {
    let (reference, pattern) = input;
    // The allow list never panics, whatever the pattern and reference.
    let _ = glob_match(pattern, reference);
    if let Ok(parsed_pattern) = ImagePattern::parse(pattern) {
        let rules = ImageConfig {
            allow: vec![parsed_pattern],
            ..Default::default()
        };
        if let Ok(image) = check_image(reference, &rules) {
            assert!(
                glob_match(pattern, &image.normalized()) || glob_match(pattern, &image.familiar())
            );
        }
    }

    let Ok(parsed) = ImageRef::parse(reference) else {
        return;
    };
    let normalized = parsed.normalized();
    assert!(harmless(&normalized), "{reference:?} -> {normalized:?}");
    assert!(
        !normalized.contains(char::is_whitespace) && !normalized.contains([';', '$', '`']),
        "{normalized:?}"
    );
    assert!(
        !parsed.repository.contains(|c: char| c.is_ascii_uppercase()),
        "{normalized:?}"
    );

    let again = ImageRef::parse(&normalized)
        .unwrap_or_else(|e| panic!("{reference:?} -> {normalized:?} does not parse: {e}"));
    // normalized() spells out the default tag; otherwise the two are the same reference.
    let mut expected = parsed.clone();
    if expected.tag.is_none() && expected.digest.is_none() {
        expected.tag = Some("latest".into());
    }
    assert_eq!(again, expected, "{reference:?} -> {normalized:?}");
    assert_eq!(again.normalized(), normalized);

    let familiar = parsed.familiar();
    assert!(harmless(&familiar), "{reference:?} -> {familiar:?}");
    let back = ImageRef::parse(&familiar)
        .unwrap_or_else(|e| panic!("familiar {familiar:?} of {reference:?} does not parse: {e}"));
    assert_eq!(
        back.normalized(),
        normalized,
        "familiar {familiar:?} of {reference:?} names another image"
    );
});
