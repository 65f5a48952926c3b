//! Docker image references, parsed and normalized by Docker's own grammar, so that the allow
//! list sees exactly the image the engine will run and nothing odd reaches the engine.

use std::fmt;

const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_REGISTRY: &str = "index.docker.io";
const MAX_NAME: usize = 255;
const MAX_REFERENCE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, String> {
        if input.is_empty() {
            return Err("it is empty".into());
        }
        if input.len() > MAX_REFERENCE {
            return Err(format!("it is {} characters long", input.len()));
        }
        if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("it contains {c:?}"));
        }
        if input.starts_with('-') {
            return Err("it starts with '-'".into());
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest)?)),
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag; one before it belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(parse_tag(&rest[last_slash + i + 1..])?),
            ),
            None => (rest, None),
        };
        let (registry, path) = split_registry(name);
        // Docker's legacy name for its hub: the engine runs docker.io's image, so the allow
        // list must see docker.io too.
        let registry = if registry == LEGACY_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        if registry != DEFAULT_REGISTRY {
            check_registry(registry)?;
        }
        if path.is_empty() {
            return Err("the repository name is missing".into());
        }
        for component in path.split('/') {
            check_component(component)?;
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        // Docker limits the normalized name (`docker.io/library/…` included): a longer one
        // would pass here and be refused by the engine, which reads as a transient failure.
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(format!(
                "the repository name is longer than {MAX_NAME} characters"
            ));
        }
        Ok(ImageRef {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The fully qualified form, `registry/repository[:tag][@digest]`, with `latest` as the
    /// tag when neither a tag nor a digest was given.
    pub fn normalized(&self) -> String {
        self.render(&format!("{}/{}", self.registry, self.repository))
    }

    /// The short form people type (`busybox:latest`, `qdock/busybox:1`). A Docker Hub
    /// repository whose first component reads as a registry (`docker.io/localhost/x`,
    /// `docker.io/example.com/x`, `docker.io/docker.io/x`) keeps `docker.io/`: shortened it would name another registry
    /// and match that registry's allow-list patterns.
    pub fn familiar(&self) -> String {
        // As Docker does, `library/` goes only when one component remains.
        let short = self
            .repository
            .strip_prefix("library/")
            .filter(|rest| !rest.contains('/'))
            .unwrap_or(&self.repository);
        // Whatever its first component reads as, `docker.io` itself included: split off, it
        // is taken for the registry.
        let ambiguous = split_registry(short).1 != short;
        let name = if self.registry != DEFAULT_REGISTRY || ambiguous {
            format!("{}/{}", self.registry, self.repository)
        } else {
            short.to_string()
        };
        self.render(&name)
    }

    fn render(&self, name: &str) -> String {
        let mut s = name.to_string();
        match (&self.tag, &self.digest) {
            (Some(tag), _) => {
                s.push(':');
                s.push_str(tag);
            }
            (None, None) => s.push_str(":latest"),
            (None, Some(_)) => {}
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = registry.split_once(':').unwrap_or((registry, ""));
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !host_ok
        || (registry.contains(':')
            && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit())))
    {
        return Err(format!(
            "registry {registry:?} is not a host name with an optional port"
        ));
    }
    Ok(())
}

/// Docker's path component: lowercase alphanumerics separated by `.`, `_`, `__` or dashes.
fn check_component(component: &str) -> Result<(), String> {
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "repository names must be lowercase ({component:?})"
        ));
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            break;
        }
        let sep_len = match bytes[i] {
            b'.' => 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => bytes[i..].iter().take_while(|&&b| b == b'-').count(),
            _ => break,
        };
        i += sep_len;
        expect_alnum = true;
    }
    if component.is_empty() || i != bytes.len() || expect_alnum {
        return Err(format!(
            "{component:?} is not a valid repository name component (lowercase letters, digits, and . _ - between them)"
        ));
    }
    Ok(())
}

fn parse_tag(tag: &str) -> Result<String, String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(format!(
            "tag {tag:?} is not valid (letters, digits, _ . -; at most 128)"
        ));
    }
    Ok(tag.to_string())
}

fn parse_digest(digest: &str) -> Result<String, String> {
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64,
        Some(("sha512", hex)) => hex.len() == 128,
        _ => false,
    } && digest.split_once(':').is_some_and(|(_, hex)| {
        hex.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if !ok {
        return Err(format!(
            "digest {digest:?} is not sha256:<64 lowercase hex digits>"
        ));
    }
    Ok(digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        for (input, normalized, familiar) in [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "fastqc:0.11.5",
                "docker.io/library/fastqc:0.11.5",
                "fastqc:0.11.5",
            ),
            (
                "qdock/busybox:1",
                "docker.io/qdock/busybox:1",
                "qdock/busybox:1",
            ),
            (
                "127.0.0.1:5000/bio/star:2.7",
                "127.0.0.1:5000/bio/star:2.7",
                "127.0.0.1:5000/bio/star:2.7",
            ),
            ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
            (
                "docker.io/localhost/x",
                "docker.io/localhost/x:latest",
                "docker.io/localhost/x:latest",
            ),
            (
                "docker.io/example.com/x:1",
                "docker.io/example.com/x:1",
                "docker.io/example.com/x:1",
            ),
            // Found by the fuzzer: shortened, it named docker.io/library/22.
            (
                "docker.io/docker.io/library/22",
                "docker.io/docker.io/library/22:latest",
                "docker.io/docker.io/library/22:latest",
            ),
            (
                "library/a.b/c",
                "docker.io/library/a.b/c:latest",
                "library/a.b/c:latest",
            ),
            (
                "index.docker.io/busybox:1",
                "docker.io/library/busybox:1",
                "busybox:1",
            ),
            (
                "a_b__c-d---e.f",
                "docker.io/library/a_b__c-d---e.f:latest",
                "a_b__c-d---e.f:latest",
            ),
        ] {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.normalized(), normalized, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
    }

    #[test]
    fn digest_only_has_no_default_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.normalized(), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn refuses_bad_input() {
        let long = "a".repeat(300);
        for input in [
            "",
            " ",
            "busy box",
            "x;rm -rf /",
            "$(id)",
            "-v",
            "Busybox",
            "a//b",
            "a/",
            ":tag",
            "busybox:",
            "busybox@sha256:abc",
            "a..b",
            "_a",
            "a-",
            long.as_str(),
            "x\n",
            "ex ample.com/a",
            "bad_host:5000/a",
            "host:port/a",
            // 250 characters, but 268 as docker.io/library/…, over Docker's 255.
            "d".repeat(250).as_str(),
        ] {
            assert!(ImageRef::parse(input).is_err(), "{input:?} was accepted");
        }
    }
}
