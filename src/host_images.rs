//! What every execution host advertises in `qdock_images`, as the qmaster holds it
//! (`qhost -F qdock_images`), and whether a job's hard image request can find a host at all.
//! Pure: `qdock jsv` hands in qhost's text and the request it adds (see
//! [`crate::methods::cell_images`] for the asking).
//!
//! Only a host's current load report counts. A host without a `qdock_images` value is silent:
//! its execd is down or unheard (the qmaster trashes a host's load values then) or its sensor
//! does not report. A silent host is named but is no evidence either way; when no host reports
//! at all nothing is known, and the job is let in as before.

use crate::advertise::{self, PULL_MARK, SEPARATOR};

/// One execution host and its `qdock_images` value; None: silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostImages {
    pub host: String,
    pub value: Option<String>,
}

/// Whether a request finds a host, by the hosts' reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A reporting host satisfies the request.
    Found,
    /// Hosts report, and none satisfies it: what they report, for people.
    Nowhere(String),
    /// No host reports `qdock_images`.
    Unknown,
}

/// The longest description of the hosts in a refusal: qsub prints it as one line, and the
/// qmaster reads a JSV's line into 10000 bytes (sge_jsv_script.c).
const MAX_DESCRIPTION: usize = 600;

/// The hosts in `qhost -F qdock_images` output (8.1.9 and Open Cluster Scheduler): a host's
/// line starts at column 0 with its name, its resources follow indented as
/// `Host Resource(s):      hl:qdock_images=;a:1;`. The `global` pseudo host, the header
/// and the ruler are no hosts.
pub fn parse_qhost(text: &str) -> Vec<HostImages> {
    let mut hosts: Vec<HostImages> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            let value = line
                .split_whitespace()
                .find_map(|word| word.split_once(":qdock_images=").map(|(_, v)| v));
            if let (Some(value), Some(host)) = (value, hosts.last_mut()) {
                host.value = Some(value.to_string());
            }
            continue;
        }
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name == "HOSTNAME" || name == "global" || name.starts_with('-') {
            continue;
        }
        hosts.push(HostImages {
            host: name.to_string(),
            value: None,
        });
    }
    hosts
}

/// Whether `request` (a `qdock_images` request as the JSV adds it) finds a host in `hosts`.
pub fn find(request: &str, hosts: &[HostImages]) -> Finding {
    let reporting = || hosts.iter().filter_map(|h| h.value.as_deref());
    if reporting().next().is_none() {
        return Finding::Unknown;
    }
    if reporting().any(|value| advertise::satisfies(request, value)) {
        return Finding::Found;
    }
    Finding::Nowhere(describe(hosts))
}

/// `vm: qdock/busybox:1 fastqc:0.11.9; node1 node2: qdock/busybox:1; node3: silent`: hosts
/// with the same report together, in the order qhost lists them, cut at [`MAX_DESCRIPTION`].
fn describe(hosts: &[HostImages]) -> String {
    let mut groups: Vec<(Vec<&str>, String)> = Vec::new();
    for h in hosts {
        let what = match &h.value {
            None => "silent (no load report)".to_string(),
            Some(value) => {
                let entries: Vec<&str> = value
                    .split(SEPARATOR)
                    .filter(|e| !e.is_empty())
                    .map(|e| if e == PULL_MARK { "(pulls)" } else { e })
                    .collect();
                if entries.is_empty() {
                    "no images".to_string()
                } else {
                    entries.join(" ")
                }
            }
        };
        match groups.iter_mut().find(|(_, w)| *w == what) {
            Some((names, _)) => names.push(&h.host),
            None => groups.push((vec![&h.host], what)),
        }
    }
    let mut out = String::new();
    for (i, (names, what)) in groups.iter().enumerate() {
        let part = format!(
            "{}{}: {what}",
            if i == 0 { "" } else { "; " },
            names.join(" ")
        );
        if out.len() + part.len() > MAX_DESCRIPTION {
            out.push_str(&format!("; … {} more", groups.len() - i));
            break;
        }
        out.push_str(&part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const QHOST: &str = "\
HOSTNAME                ARCH         NCPU NSOC NCOR NTHR  LOAD  MEMTOT  MEMUSE  SWAPTO  SWAPUS
----------------------------------------------------------------------------------------------
global                  -               -    -    -    -     -       -       -       -       -
node1                   lx-amd64        2    1    2    2  1.75   23.6G    1.4G     0.0     0.0
    Host Resource(s):      hl:qdock_images=;qdock/busybox:1;
node2                   lx-amd64        2    1    2    2  1.67   23.6G    1.4G     0.0     0.0
    Host Resource(s):      hl:qdock_images=;+pull;qdock/busybox:1;
node3                   lx-amd64        2    1    2    2     -   23.6G       -     0.0       -
vm                      lx-amd64        2    1    2    2  1.71   23.6G    1.4G     0.0     0.0
    Host Resource(s):      hl:qdock_images=;qdock/busybox:1;fastqc:0.11.9;
";

    fn host(name: &str, value: Option<&str>) -> HostImages {
        HostImages {
            host: name.into(),
            value: value.map(String::from),
        }
    }

    #[test]
    fn qhost_lists_the_hosts_and_their_values() {
        assert_eq!(
            parse_qhost(QHOST),
            [
                host("node1", Some(";qdock/busybox:1;")),
                host("node2", Some(";+pull;qdock/busybox:1;")),
                host("node3", None),
                host("vm", Some(";qdock/busybox:1;fastqc:0.11.9;")),
            ]
        );
        assert_eq!(parse_qhost(""), []);
    }

    #[test]
    fn a_host_holding_or_pulling_is_found_as_the_scheduler_would() {
        let hosts = parse_qhost(QHOST);
        let holds_or_pulls = "*;other:1;*|*;+pull;*";
        assert_eq!(find(holds_or_pulls, &hosts), Finding::Found);
        assert_eq!(find("*;fastqc:0.11.9;*", &hosts), Finding::Found);
        // Only holders count for a hard request without the pull mark.
        let Finding::Nowhere(hosts) = find("*;other:1;*", &hosts) else {
            panic!("found")
        };
        assert_eq!(
            hosts,
            "node1: qdock/busybox:1; node2: (pulls) qdock/busybox:1; node3: silent (no load report); vm: qdock/busybox:1 fastqc:0.11.9"
        );
    }

    #[test]
    fn silent_hosts_alone_are_no_evidence() {
        let silent = [host("a", None), host("b", None)];
        assert_eq!(find("*;x:1;*", &silent), Finding::Unknown);
        assert_eq!(find("*;x:1;*", &[]), Finding::Unknown);
    }

    #[test]
    fn hosts_reporting_alike_are_named_together_and_the_line_stays_short() {
        let mut hosts: Vec<HostImages> = (0..3)
            .map(|i| host(&format!("n{i}"), Some(";a:1;")))
            .collect();
        hosts.push(host("e", Some(";")));
        let Finding::Nowhere(text) = find("*;x:1;*", &hosts) else {
            panic!()
        };
        assert_eq!(text, "n0 n1 n2: a:1; e: no images");
        let many: Vec<HostImages> = (0..200)
            .map(|i| host(&format!("node{i}"), Some(&format!(";image{i}:1;"))))
            .collect();
        let Finding::Nowhere(text) = find("*;x:1;*", &many) else {
            panic!()
        };
        assert!(text.len() <= MAX_DESCRIPTION + 20, "{}", text.len());
        assert!(text.ends_with("more"), "{text}");
    }
}
