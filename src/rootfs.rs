//! What qdock puts into a container's own filesystem between create and start: a few small
//! entries, owned by root, that the engine extracts from a tar archive (`PUT
//! /containers/<id>/archive`). They live in the container's writable layer, so they go with
//! the container and no host path is involved: nothing a user could swap, nothing to clean.
//! Pure: the spec decides the entries, the engine only uploads [`archive`]'s bytes.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: PathBuf,
        mode: u32,
    },
    File {
        path: PathBuf,
        mode: u32,
        contents: String,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
}

impl Entry {
    pub fn path(&self) -> &Path {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

const BLOCK: usize = 512;

/// A tar archive of `entries`, paths relative to the container's root, every entry owned by
/// root. Names longer than ustar's fields get a PAX header, as Docker's extractor reads them.
pub fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let name = relative(entry.path());
        let (kind, mode, link, contents): (u8, u32, String, &[u8]) = match entry {
            Entry::Dir { mode, .. } => (b'5', *mode, String::new(), &[]),
            Entry::File { mode, contents, .. } => (b'0', *mode, String::new(), contents.as_bytes()),
            Entry::Symlink { target, .. } => (b'2', 0o777, text(target), &[]),
        };
        let mut pax = String::new();
        if name.len() > 100 {
            pax.push_str(&pax_record("path", &name));
        }
        if link.len() > 100 {
            pax.push_str(&pax_record("linkpath", &link));
        }
        if !pax.is_empty() {
            out.extend(header("pax", b'x', 0o644, "", pax.len()));
            push_padded(&mut out, pax.as_bytes());
        }
        out.extend(header(&name, kind, mode, &link, contents.len()));
        push_padded(&mut out, contents);
    }
    // The end of an archive: two zero blocks.
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

fn relative(path: &Path) -> String {
    text(path).trim_start_matches('/').to_string()
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// One `length key=value\n` record; its length counts its own digits.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut length = body.len() + 1;
    while (length.to_string().len() + body.len()) != length {
        length = length.to_string().len() + body.len();
    }
    format!("{length}{body}")
}

fn push_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let rest = data.len() % BLOCK;
    if rest != 0 {
        out.resize(out.len() + BLOCK - rest, 0);
    }
}

/// A ustar header; names too long for their field are cut there (their PAX record, written
/// before, is what the extractor uses).
fn header(name: &str, kind: u8, mode: u32, link: &str, size: usize) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let mut put = |at: usize, len: usize, value: &[u8]| {
        let n = value.len().min(len);
        h[at..at + n].copy_from_slice(&value[..n]);
    };
    put(0, 100, name.as_bytes());
    put(100, 8, format!("{mode:07o}\0").as_bytes());
    put(108, 8, b"0000000\0");
    put(116, 8, b"0000000\0");
    put(124, 12, format!("{size:011o}\0").as_bytes());
    put(136, 12, b"00000000000\0");
    put(156, 1, &[kind]);
    put(157, 100, link.as_bytes());
    put(257, 8, b"ustar\x0000");
    put(265, 32, b"root");
    put(297, 32, b"root");
    // The checksum is summed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// GNU tar's verbose listing of an archive: what any extractor would make of it.
    fn listing(bytes: &[u8]) -> String {
        let mut tar = Command::new("tar")
            .args(["-tvf", "-", "--numeric-owner"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar");
        tar.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = tar.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn entries_are_roots_with_their_modes_and_contents() {
        let bytes = archive(&[
            Entry::Dir {
                path: "/tmp".into(),
                mode: 0o1777,
            },
            Entry::Symlink {
                path: "/tmp/42.1.all.q".into(),
                target: "/.qdock/tmp/42.1.all.q".into(),
            },
            Entry::File {
                path: "/etc/profile.d/x.sh".into(),
                mode: 0o644,
                contents: "export A='b'\n".into(),
            },
        ]);
        assert_eq!(bytes.len() % BLOCK, 0);
        let list = listing(&bytes);
        let lines: Vec<Vec<&str>> = list
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0][0], "drwxrwxrwt");
        assert_eq!(lines[0][1], "0/0");
        assert_eq!(lines[0][5], "tmp");
        assert_eq!(lines[1][0], "lrwxrwxrwx");
        assert_eq!(
            lines[1][5..],
            ["tmp/42.1.all.q", "->", "/.qdock/tmp/42.1.all.q"]
        );
        assert_eq!(lines[2][0], "-rw-r--r--");
        assert_eq!(lines[2][2], "13");
        assert_eq!(lines[2][5], "etc/profile.d/x.sh");
    }

    #[test]
    fn long_names_and_targets_travel_in_pax_records() {
        let long = format!("/tmp/{}", "d".repeat(150));
        let target = format!("/.qdock/tmp/{}", "t".repeat(140));
        let bytes = archive(&[Entry::Symlink {
            path: long.clone().into(),
            target: target.clone().into(),
        }]);
        let list = listing(&bytes);
        assert!(
            list.contains(&format!("{} -> {target}", &long[1..])),
            "{list}"
        );
    }

    #[test]
    fn a_pax_record_counts_its_own_length() {
        assert_eq!(pax_record("path", "a"), "9 path=a\n");
        let r = pax_record("path", &"x".repeat(95));
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
    }
}
