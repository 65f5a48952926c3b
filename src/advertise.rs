//! The `qdock_images` load value: which of a host's local images the scheduler sees, and the
//! request that finds a host holding a job's image. Pure: the load sensor hands in the
//! engine's references, the JSV a job's image; both must agree on the format, so it lives here.
//!
//! The value is the advertised references between separators, `;qdock/busybox:1;fastqc:0.11.9;`
//! (`;` alone when there are none), each in Docker's familiar form (`docker.io/library/` left
//! out) with its tag, or as `repository@sha256:…` for a digest. A job finds a host holding
//! `fastqc:0.11.9` with `-l 'qdock_images=*;fastqc:0.11.9;*'`, which `fastqc:0.11.90` and
//! `biocontainers/fastqc:0.11.9` do not match.
//!
//! A host whose own config lets it pull a missing image says so first, `;+pull;…`: a job that
//! must run where its image is or can come asks `*;fastqc:0.11.9;*|*;+pull;*`, so each host's
//! own pull policy decides, not the submit host's. `+` is no character of an image reference.

use crate::image_ref::ImageRef;
use crate::pattern::{ImagePattern, glob_match};

/// The longest value Grid Engine 8.1.9 takes. Son of Grid Engine 8.1.9's execd reads a load
/// sensor's line with `fscanf(file, "%[^\n]\n", input)` into `char input[10000]` and splits it
/// with `sscanf(input, "%[^:]:%[^:]:%[^\n]", host, name, value)` into `char value[1000]`
/// (source/daemons/execd/sge_load_sensor.c, `read_ls()`): neither is bounded, so a longer
/// value overruns the execd's stack. 999 bytes, and the terminating NUL.
pub const MAX_VALUE: usize = 999;

/// Between entries and at both ends. It is no character of an image reference, and nothing
/// Grid Engine's requests treat specially: `,` and blank split a `-l` list
/// (`centry_list_parse_from_string()`), `!|&()` and blank are its expression operators and
/// `*?[]` fnmatch's (`sge_eval_expression.c`).
pub const SEPARATOR: char = ';';

/// The entry of a host that pulls images it lacks (its `images.pull` is not `never`).
pub const PULL_MARK: &str = "+pull";

/// What one load report advertises, and what did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub value: String,
    /// Entries that matched an advertise pattern but were left out, in rank order.
    pub dropped: Vec<String>,
}

/// The entry naming `image` in the value: the familiar form, tag and all; an image pinned by
/// digest is found by its digest alone, as the engine finds it (`RepoDigests` carry no tag).
pub fn entry(image: &ImageRef) -> String {
    if image.digest.is_some() && image.tag.is_some() {
        let pinned = ImageRef {
            tag: None,
            ..image.clone()
        };
        return pinned.familiar();
    }
    image.familiar()
}

/// The advertised value for a host whose engine holds `references` (tags `repo:tag` and
/// digests `repo@sha256:…`, as the engine lists them), led by [`PULL_MARK`] when it `pulls`
/// missing images. An entry is advertised when it
/// matches one of `patterns`; entries rank by the first pattern they match, then tags before
/// digests, then alphabetically. They are added in that order until the next one would make
/// the value longer than [`MAX_VALUE`]: it and every one after it are dropped, so what a
/// host advertises depends only on its images and the patterns.
pub fn advertise(references: &[String], patterns: &[ImagePattern], pulls: bool) -> Advert {
    let mut ranked: Vec<(usize, bool, String)> = references
        .iter()
        .filter_map(|r| ImageRef::parse(r).ok())
        .filter_map(|image| {
            let rank = patterns.iter().position(|p| p.matches(&image))?;
            Some((rank, image.digest.is_some(), entry(&image)))
        })
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.2 == b.2);
    let mut value = String::from(SEPARATOR);
    if pulls {
        value.push_str(PULL_MARK);
        value.push(SEPARATOR);
    }
    let mut dropped = Vec::new();
    for (_, _, entry) in ranked {
        // The entry and the separator after it must fit.
        if dropped.is_empty() && value.len() + entry.len() < MAX_VALUE {
            value.push_str(&entry);
            value.push(SEPARATOR);
        } else {
            dropped.push(entry);
        }
    }
    Advert { value, dropped }
}

/// The `qdock_images` requests for a job's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Finds a host advertising the image.
    pub present: String,
    /// Finds a host advertising the image or [`PULL_MARK`]: where the job can start.
    pub present_or_pulled: String,
}

/// The `qdock_images` requests for `image`; None when no host ever advertises it (it matches
/// none of `patterns`), where a request could only keep the job from running.
pub fn request(image: &ImageRef, patterns: &[ImagePattern]) -> Option<Request> {
    patterns.iter().any(|p| p.matches(image)).then(|| {
        let present = finding(&entry(image));
        Request {
            present_or_pulled: format!("{present}|{}", finding(PULL_MARK)),
            present,
        }
    })
}

/// Whether a host advertising `value` satisfies `request`, as the scheduler decides: its
/// alternatives split at `|` (sge_eval_expression.c), each matched by fnmatch, which for the
/// requests made here (no `?` or `[`: no image reference holds them) is [`glob_match`].
pub fn satisfies(request: &str, value: &str) -> bool {
    request
        .split('|')
        .any(|alternative| glob_match(alternative, value))
}

/// The pattern matching a value that holds `entry`.
fn finding(entry: &str) -> String {
    format!("*{SEPARATOR}{entry}{SEPARATOR}*")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<ImagePattern> {
        list.iter()
            .map(|p| ImagePattern::parse(p).unwrap())
            .collect()
    }

    fn refs(list: &[&str]) -> Vec<String> {
        list.iter().map(|r| r.to_string()).collect()
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn finds(value: &str, image: &str) -> bool {
        let image = ImageRef::parse(image).unwrap();
        satisfies(&request(&image, &patterns(&["*"])).unwrap().present, value)
    }

    #[test]
    fn familiar_entries_between_separators_tags_before_digests() {
        let a = advertise(
            &refs(&[
                "qdock/busybox:1",
                &format!("fastqc@{DIGEST}"),
                "fastqc:0.11.9",
                "docker.io/library/busybox:latest",
                "127.0.0.1:5000/bio/star:2.7",
            ]),
            &patterns(&["*"]),
            false,
        );
        assert_eq!(
            a.value,
            format!(
                ";127.0.0.1:5000/bio/star:2.7;busybox:latest;fastqc:0.11.9;qdock/busybox:1;fastqc@{DIGEST};"
            )
        );
        assert!(a.dropped.is_empty());
        assert_eq!(advertise(&[], &patterns(&["*"]), false).value, ";");
    }

    #[test]
    fn requests_match_exactly_one_entry() {
        let value = advertise(
            &refs(&[
                "fastqc:0.11.90",
                "biocontainers/fastqc:0.11.9",
                "fastqc:0.11.9-x",
            ]),
            &patterns(&["*"]),
            false,
        )
        .value;
        assert!(!finds(&value, "fastqc:0.11.9"), "{value}");
        let value = format!("{value}fastqc:0.11.9;");
        assert!(finds(&value, "fastqc:0.11.9"), "{value}");
        // The job's spelling does not matter: the request is normalized as the starter does.
        assert!(finds(&value, "docker.io/library/fastqc:0.11.9"));
        assert!(finds(";busybox:latest;", "busybox"));
        // A job pinned by digest is found by the digest, whatever tag it also names.
        let pinned = format!(";fastqc@{DIGEST};");
        assert!(finds(&pinned, &format!("fastqc:0.11.9@{DIGEST}")));
        assert!(!finds(&pinned, "fastqc:0.11.9"));
    }

    #[test]
    fn admin_patterns_choose_and_rank() {
        let a = advertise(
            &refs(&["zlib:1", "a/star:2", "fastqc:1", "other:1", "fastqc:0"]),
            &patterns(&["fastqc:*", "*/star:*", "z*"]),
            false,
        );
        assert_eq!(a.value, ";fastqc:0;fastqc:1;a/star:2;zlib:1;");
        let image = ImageRef::parse("other:1").unwrap();
        assert_eq!(request(&image, &patterns(&["fastqc:*"])), None);
        assert_eq!(
            request(&image, &patterns(&["other:*"])),
            Some(Request {
                present: "*;other:1;*".into(),
                present_or_pulled: "*;other:1;*|*;+pull;*".into(),
            })
        );
        assert_eq!(advertise(&refs(&["a:1"]), &[], false).value, ";");
    }

    #[test]
    fn truncation_never_overflows_and_drops_the_tail() {
        // Hundreds of images with names of every length up to the longest reference.
        let images: Vec<String> = (0..600)
            .map(|i| {
                format!(
                    "r{i}/{}:{}",
                    "n".repeat(i % 200 + 1),
                    "t".repeat(i % 120 + 1)
                )
            })
            .collect();
        for pats in [vec!["*"], vec!["r1*", "*"], vec!["r59*:*", "r1*"]] {
            let a = advertise(&images, &patterns(&pats), false);
            assert!(a.value.len() <= MAX_VALUE, "{}", a.value.len());
            assert!(a.value.starts_with(';') && a.value.ends_with(';'));
            assert!(!a.dropped.is_empty());
            // What is left out is exactly the tail of the ranking: the first dropped entry
            // did not fit.
            assert!(a.value.len() + a.dropped[0].len() + 1 > MAX_VALUE);
            let kept = a.value.trim_matches(';').split(';').count();
            let again = advertise(&images, &patterns(&pats), false);
            assert_eq!(a, again, "deterministic");
            let wanted = images
                .iter()
                .filter(|i| {
                    patterns(&pats)
                        .iter()
                        .any(|p| p.matches(&ImageRef::parse(i).unwrap()))
                })
                .count();
            assert_eq!(kept + a.dropped.len(), wanted);
        }
        // The first patterns' images go in first.
        let a = advertise(&images, &patterns(&["r599/*", "*"]), false);
        assert!(a.value.starts_with(";r599/"), "{}", &a.value[..40]);
    }

    #[test]
    fn entries_cannot_break_the_value_or_the_line() {
        // References the engine could list but Docker's grammar refuses never get in.
        let a = advertise(
            &refs(&[
                "a;b:1",
                "x:1\nhost:qdock_engine:1",
                "c d:1",
                "<none>:<none>",
                "ok:1",
            ]),
            &patterns(&["*"]),
            false,
        );
        assert_eq!(a.value, ";ok:1;");
    }

    #[test]
    fn a_host_that_pulls_says_so_first_and_only_then() {
        let image = ImageRef::parse("fastqc:0.11.9").unwrap();
        let wanted = request(&image, &patterns(&["*"])).unwrap();
        let pulling = advertise(&refs(&["other:1"]), &patterns(&["*"]), true);
        assert_eq!(pulling.value, ";+pull;other:1;");
        assert_eq!(advertise(&[], &[], true).value, ";+pull;");
        let holding = advertise(&refs(&["fastqc:0.11.9"]), &patterns(&["*"]), false);
        let neither = advertise(&refs(&["other:1"]), &patterns(&["*"]), false);
        // Where the job can start: the image is there, or the host fetches it.
        assert!(satisfies(&wanted.present_or_pulled, &pulling.value));
        assert!(satisfies(&wanted.present_or_pulled, &holding.value));
        assert!(!satisfies(&wanted.present_or_pulled, &neither.value));
        // Where it is already: only the holder.
        assert!(!satisfies(&wanted.present, &pulling.value));
        assert!(satisfies(&wanted.present, &holding.value));
        // The mark is no image: a reference spelled like it is refused, not advertised.
        assert_eq!(
            advertise(&refs(&["+pull"]), &patterns(&["*"]), false).value,
            ";"
        );
        // The mark takes its room first: the images fill what is left, never more.
        let many: Vec<String> = (0..300).map(|i| format!("image{i}:1")).collect();
        let full = advertise(&many, &patterns(&["*"]), true);
        assert!(full.value.starts_with(";+pull;image") && full.value.len() <= MAX_VALUE);
        assert!(!full.dropped.is_empty());
    }
}
