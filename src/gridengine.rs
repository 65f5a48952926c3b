//! Which Grid Engine runs the cell, and what its queue methods must look like there. The two
//! implementations qdock runs on disagree on the variables a method line may use: Son of Grid
//! Engine 8.1.9's shepherd breaks on `$sge_cell` and `$sge_root` (exit 11, queue in error),
//! Open Cluster Scheduler 9.x's on `$ja_task_id` (`config_file.cc`). A line that names one
//! the shepherd does not know never reaches qdock: the job is requeued and the container
//! runs on, so `qdock check` and sge-conf/register-queue choose the lines by implementation.

use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Implementation {
    /// Son of Grid Engine (Debian's gridengine 8.1.9): `SGE 8.1.9`.
    SonOfGridEngine(String),
    /// Open Cluster Scheduler, or its commercial build Gridware Cluster Scheduler:
    /// `OCS 9.1.4`, `GCS 9.1.4`.
    OpenClusterScheduler(String),
}

impl Implementation {
    /// From the first line of `qconf -help`, which names the product and its version.
    pub fn identify(first_line: &str) -> Option<Implementation> {
        let (product, version) = first_line.trim().split_once(' ')?;
        let version = version.trim().to_string();
        match product {
            "SGE" => Some(Implementation::SonOfGridEngine(version)),
            "OCS" | "GCS" => Some(Implementation::OpenClusterScheduler(version)),
            _ => None,
        }
    }

    /// The variables its shepherd expands in a method line; any other breaks the job.
    fn variables(&self) -> &'static [&'static str] {
        match self {
            Implementation::SonOfGridEngine(_) => &[
                "job_id",
                "ja_task_id",
                "job_pid",
                "job_owner",
                "host",
                "queue",
                "job_name",
            ],
            Implementation::OpenClusterScheduler(_) => &[
                "sge_root",
                "sge_cell",
                "host",
                "job_owner",
                "job_id",
                "job_name",
                "queue",
                "job_pid",
            ],
        }
    }

    /// The arguments of qdock's control methods here (sge-conf/queue-methods*.conf): where
    /// `$ja_task_id` is unknown the task comes from `SGE_TASK_ID` and the job's pid from
    /// the spool.
    pub fn method_arguments(&self) -> &'static str {
        match self {
            Implementation::SonOfGridEngine(_) => "$job_id $ja_task_id $job_pid",
            Implementation::OpenClusterScheduler(_) => "$job_id",
        }
    }

    /// Does a queue's method line use only variables this shepherd knows?
    pub fn check_method_line(&self, line: &str) -> Result<(), String> {
        let unknown: Vec<&str> = variables_in(line)
            .filter(|v| !self.variables().contains(v))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(format!(
            "uses ${} , which {self}'s shepherd does not know (the job would be requeued and its container never suspended or stopped); use `{}`",
            unknown.join(", $"),
            self.method_arguments()
        ))
    }
}

impl std::fmt::Display for Implementation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Implementation::SonOfGridEngine(v) => write!(f, "Son of Grid Engine {v}"),
            Implementation::OpenClusterScheduler(v) => write!(f, "Open Cluster Scheduler {v}"),
        }
    }
}

/// The `$name`s in a method line.
fn variables_in(line: &str) -> impl Iterator<Item = &str> {
    line.split('$').skip(1).map(|rest| {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        &rest[..end]
    })
}

/// What `qdock check` says of the cell the caller's Grid Engine client reaches: the
/// implementation, and for each queue that runs qdock's starter whether its method lines fit
/// it. Nothing when no client answers (a host without one, or no cell to reach).
pub fn findings() -> Vec<(bool, String)> {
    let Some(help) = qconf(&["-help"]) else {
        return vec![(
            true,
            "no Grid Engine client answers here (qconf): the cell's queues were not checked".into(),
        )];
    };
    let Some(implementation) = help.lines().next().and_then(Implementation::identify) else {
        return vec![(
            false,
            format!(
                "qconf -help names no Grid Engine qdock knows: {:?}",
                help.lines().next().unwrap_or_default()
            ),
        )];
    };
    let mut out = vec![(true, format!("Grid Engine: {implementation}"))];
    if matches!(implementation, Implementation::OpenClusterScheduler(_)) {
        // The host's own configuration overrides the global one: both count, in that order.
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let params = [qconf(&["-sconf"]), qconf(&["-sconf", &host])]
            .into_iter()
            .flatten()
            .map(|conf| execd_params(&conf))
            .collect::<Vec<_>>()
            .join(",");
        let systemd = std::path::Path::new("/run/systemd/system").is_dir();
        out.push(group_finding(&params, systemd));
    }
    let queues = qconf(&["-sql"]).unwrap_or_default();
    for queue in queues.split_whitespace() {
        let conf = qconf(&["-sq", queue]).unwrap_or_default();
        out.extend(queue_findings(&implementation, queue, &conf));
    }
    out
}

/// The `execd_params` value of a configuration (`qconf -sconf`).
fn execd_params(conf: &str) -> String {
    conf.replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("execd_params"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Does Open Cluster Scheduler give this host's jobs an additional group? It gives none
/// (`addgrpid` 0) unless the execd collects usage with PDC (its default, but not where
/// systemd runs and collects it) or kills by group (`exec_job.cc`,
/// `ocs_common_systemd.cc`); without one, qdock cannot prove a job and refuses it.
fn group_finding(execd_params: &str, systemd: bool) -> (bool, String) {
    let param = |key: &str| {
        execd_params
            .split([',', ' ', '\t'])
            .filter_map(|p| p.split_once('='))
            .rfind(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_ascii_uppercase())
    };
    let kill = param("ENABLE_ADDGRP_KILL").is_some_and(|v| v == "TRUE" || v == "1");
    let usage = param("USAGE_COLLECTION");
    let pdc = match usage.as_deref() {
        Some("NONE") => false,
        Some("PDC") | Some("HYBRID") => true,
        _ => !systemd,
    };
    if kill || pdc {
        return (
            true,
            format!(
                "jobs get an additional group here ({}){}",
                if kill {
                    "ENABLE_ADDGRP_KILL"
                } else {
                    "usage collected with PDC"
                },
                if kill {
                    ""
                } else {
                    "; ENABLE_ADDGRP_KILL is off, so qdock-terminate kills a job's group itself when the engine is away"
                }
            ),
        );
    }
    (
        false,
        "jobs get no additional group here (usage collected through systemd, or none), so qdock refuses every job it cannot prove; fix: qconf -mconf, execd_params ENABLE_ADDGRP_KILL=TRUE (or USAGE_COLLECTION=PDC or HYBRID)".into(),
    )
}

/// The method lines of a queue configuration (`qconf -sq`), continuation lines joined.
fn queue_findings(implementation: &Implementation, queue: &str, conf: &str) -> Vec<(bool, String)> {
    let joined = conf.replace("\\\n", " ");
    let methods: Vec<(&str, String)> = joined
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter(|(attr, _)| attr.ends_with("_method"))
        .map(|(attr, value)| (attr, value.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    let runs_qdock = methods
        .iter()
        .any(|(attr, v)| *attr == "starter_method" && v.contains("qdock-starter"));
    if !runs_qdock {
        return Vec::new();
    }
    methods
        .into_iter()
        .filter(|(_, value)| value.contains("qdock-"))
        .map(
            |(attr, value)| match implementation.check_method_line(&value) {
                Ok(()) => (
                    true,
                    format!("queue {queue}: {attr} {value} fits {implementation}"),
                ),
                Err(why) => (false, format!("queue {queue}: {attr} {value} {why}")),
            },
        )
        .collect()
}

fn qconf(args: &[&str]) -> Option<String> {
    let out = Command::new("qconf").args(args).output().ok()?;
    // qconf -help exits 0 on 8.1.9 and 1 on some builds: its text is what counts.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (!text.trim().is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soge() -> Implementation {
        Implementation::identify("SGE 8.1.9").unwrap()
    }

    fn ocs() -> Implementation {
        Implementation::identify("OCS 9.1.4\n").unwrap()
    }

    #[test]
    fn implementations_are_told_by_qconf_help() {
        assert_eq!(soge(), Implementation::SonOfGridEngine("8.1.9".into()));
        assert_eq!(ocs(), Implementation::OpenClusterScheduler("9.1.4".into()));
        assert_eq!(
            Implementation::identify("GCS 9.1.4"),
            Some(Implementation::OpenClusterScheduler("9.1.4".into()))
        );
        assert_eq!(Implementation::identify("usage: qconf [options]"), None);
        assert_eq!(Implementation::identify(""), None);
    }

    #[test]
    fn each_shepherd_refuses_the_others_variables() {
        let soge_line = "/usr/local/bin/qdock-suspend $job_id $ja_task_id $job_pid";
        let ocs_line = "/usr/local/bin/qdock-suspend $job_id";
        assert_eq!(soge().check_method_line(soge_line), Ok(()));
        assert_eq!(soge().check_method_line(ocs_line), Ok(()));
        let e = ocs().check_method_line(soge_line).unwrap_err();
        assert!(e.contains("$ja_task_id") && e.contains("`$job_id`"), "{e}");
        let e = soge()
            .check_method_line("/usr/local/bin/qdock-suspend $job_id $sge_cell")
            .unwrap_err();
        assert!(e.contains("$sge_cell"), "{e}");
        // The lines sge-conf writes fit their own implementation.
        for imp in [soge(), ocs()] {
            let line = format!("/usr/local/bin/qdock-resume {}", imp.method_arguments());
            assert_eq!(imp.check_method_line(&line), Ok(()), "{imp}");
        }
    }

    #[test]
    fn ocs_gives_a_group_only_with_pdc_or_kill_by_group() {
        let conf =
            "execd_params                 ENABLE_ADDGRP_KILL=TRUE, \\\n   KEEP_ACTIVE=true\n";
        // The continuation line is joined: both parameters are there.
        let params = execd_params(conf);
        assert!(params.starts_with("ENABLE_ADDGRP_KILL=TRUE,"), "{params}");
        assert!(params.ends_with(" KEEP_ACTIVE=true"), "{params}");
        assert!(
            group_finding("none", false).0,
            "PDC is the default without systemd"
        );
        let (ok, text) = group_finding("none", true);
        assert!(!ok && text.contains("ENABLE_ADDGRP_KILL=TRUE"), "{text}");
        assert!(group_finding("enable_addgrp_kill=true", true).0);
        assert!(group_finding("USAGE_COLLECTION=HYBRID", true).0);
        assert!(!group_finding("USAGE_COLLECTION=NONE", false).0);
        // The host's own configuration comes last and wins.
        assert!(!group_finding("ENABLE_ADDGRP_KILL=TRUE,ENABLE_ADDGRP_KILL=FALSE", true).0);
    }

    #[test]
    fn a_queues_qdock_methods_are_checked_and_others_left_alone() {
        let conf = "qname                 all.q\n\
                    starter_method        /usr/local/bin/qdock-starter\n\
                    suspend_method        /usr/local/bin/qdock-suspend $job_id $ja_task_id \\\n                      $job_pid\n\
                    resume_method         NONE\n";
        let found = queue_findings(&ocs(), "all.q", conf);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].0, "{found:?}");
        assert!(
            !found[1].0 && found[1].1.contains("$ja_task_id"),
            "{found:?}"
        );
        let native = "qname  other.q\nstarter_method NONE\nsuspend_method /x $ja_task_id\n";
        assert!(queue_findings(&ocs(), "other.q", native).is_empty());
    }
}
