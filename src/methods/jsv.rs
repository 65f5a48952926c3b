//! `qdock jsv`: a Grid Engine Job Submission Verifier that checks a job's image request at
//! `qsub` time, so a bad or disallowed image is refused at once instead of sending the job
//! to `Eqw` on an execution host. It checks the reference and the allow list; whether the
//! image is present is each execution host's question, which their load sensors answer: to a
//! job with an image it adds `-l qdock_engine=1` and a request for a host advertising the
//! image in `qdock_images` (`[scheduling] image_request` in the config). By default the
//! hard request takes a host holding the image or one whose own config pulls it (each host's
//! load sensor says which), and a soft one prefers the holders: the execution hosts' pull
//! policies decide, not this one's.
//!
//! A job whose hard request no host can satisfy by the hosts' current reports would wait in
//! `qw` for ever: it is refused at `qsub`, with what the hosts hold ([`CellImages`]), or let
//! in with a warning (`[scheduling] image_unavailable`).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use super::cell_images::CellImages;
use crate::config::{Config, ImageRequest, Unavailable};
use crate::error::Error;
use crate::host_images::Finding;
use crate::image_ref::ImageRef;
use crate::{advertise, policy, report};

/// The complexes of sge-conf/qdock-complexes.conf, by name and shortcut: a job that names one
/// itself keeps its own request.
const ENGINE_COMPLEX: [&str; 2] = ["qdock_engine", "qde"];
const IMAGES_COMPLEX: [&str; 2] = ["qdock_images", "qdi"];

/// The protocol of jsv(1): START, then PARAM and ENV lines, then BEGIN, per job; QUIT ends.
pub struct Jsv {
    config: Config,
    /// Read again at each job: a server JSV lives as long as the qmaster.
    path: Option<PathBuf>,
    config_problem: Option<String>,
    cell: CellImages,
    env: HashMap<String, String>,
    params: HashMap<String, String>,
}

impl Jsv {
    pub fn new(config: Config, path: Option<PathBuf>, cell: CellImages) -> Self {
        Jsv {
            config,
            path,
            config_problem: None,
            cell,
            env: HashMap::new(),
            params: HashMap::new(),
        }
    }

    /// Handles one line from Grid Engine; returns the lines to answer, or None on QUIT.
    pub fn handle(&mut self, line: &str) -> Option<Vec<String>> {
        let mut words = line.splitn(3, ' ');
        let (command, second, rest) = (
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
        );
        let answer = match command {
            "QUIT" => return None,
            // The job's -v variables come only when asked for.
            "START" => {
                self.reload();
                vec!["SEND ENV".into(), "STARTED".into()]
            }
            "PARAM" => {
                self.params.insert(second.into(), rest.into());
                vec![]
            }
            "ENV" => {
                if second == "ADD" || second == "MOD" {
                    let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                    self.env.insert(name.into(), value.into());
                }
                vec![]
            }
            "BEGIN" => {
                let verdict = self.verdict();
                self.env.clear();
                self.params.clear();
                verdict
            }
            "" => vec![],
            other => vec![format!("ERROR qdock jsv got unknown command {other:?}")],
        };
        Some(answer)
    }

    fn reload(&mut self) {
        let Some(path) = &self.path else { return };
        if let Some(problem) = self.config.reload(path, &mut self.config_problem) {
            report::log(&format!("jsv: keeps the config read before: {problem}"));
        }
    }

    fn image(&self) -> Option<String> {
        let name = &self.config.job.image_variable;
        self.env.get(name).cloned().or_else(|| {
            // 8.1.9's qsub and qmaster send the job's variables only as ENV lines, after SEND
            // ENV (checked with a logging JSV); the -v list as one parameter,
            // NAME=value,NAME2=value2, is kept for Grid Engines that send it so.
            let list = self.params.get("v")?;
            list.split(',').find_map(|kv| {
                kv.strip_prefix(name.as_str())?
                    .strip_prefix('=')
                    .map(str::to_string)
            })
        })
    }

    fn verdict(&mut self) -> Vec<String> {
        let accept = vec!["RESULT STATE ACCEPT".to_string()];
        let Some(image) = self.image() else {
            return accept;
        };
        let image = match policy::check_image(&image, &self.config.images) {
            Ok(image) => image,
            Err(e) => return vec![reject(&e)],
        };
        let mut hard = ResourceList::parse(self.params.get("l_hard"));
        let mut soft = ResourceList::parse(self.params.get("l_soft"));
        // A job that names one of our complexes, hard or soft, keeps what it asked for.
        let named = |names: &[&str], hard: &ResourceList, soft: &ResourceList| {
            hard.names_any(names) || soft.names_any(names)
        };
        let mut changed = false;
        let mut answer = Vec::new();
        if self.config.scheduling.engine_request && !named(&ENGINE_COMPLEX, &hard, &soft) {
            hard.push(ENGINE_COMPLEX[0], "1");
            changed = true;
        }
        if !named(&IMAGES_COMPLEX, &hard, &soft) {
            let (hard_image, soft_image) = self.image_requests(&image);
            if let Some(request) = &hard_image {
                match self.availability(&image, request) {
                    Ok(()) => {}
                    Err(Verdict::Refuse(e)) => return vec![reject(&e)],
                    Err(Verdict::Warn(line)) => answer.push(line),
                }
            }
            for (list, request) in [(&mut hard, hard_image), (&mut soft, soft_image)] {
                if let Some(request) = request {
                    list.push(IMAGES_COMPLEX[0], &request);
                    changed = true;
                }
            }
        }
        if !changed {
            answer.extend(accept);
            return answer;
        }
        // PARAM l_hard replaces the job's whole list (sge_jsv_script.c): send it complete.
        for (name, list) in [("l_hard", &hard), ("l_soft", &soft)] {
            if list.changed {
                answer.push(format!("PARAM {name} {}", list.render()));
            }
        }
        // `-w e` judges a job without load values, so it would refuse every request of ours
        // ("no suitable queues"), and libdrmaa submits every job with it: it becomes `-w w`,
        // which says the same as a warning and lets the job in.
        if hard.changed && self.params.get("w").is_some_and(|w| w == "e") {
            answer.push("PARAM w w".into());
        }
        answer.push("RESULT STATE CORRECT".into());
        answer
    }

    /// Whether a host can ever take the job, by the hosts' current reports: refused or warned
    /// of (`[scheduling] image_unavailable`) when no reporting host satisfies its hard
    /// `request`. When the qmaster cannot be asked the job is let in, as before.
    fn availability(&mut self, image: &ImageRef, request: &str) -> Result<(), Verdict> {
        let how = self.config.scheduling.image_unavailable;
        if how == Unavailable::Ignore {
            return Ok(());
        }
        let hosts = match self.cell.find(request) {
            Ok(Finding::Nowhere(hosts)) => hosts,
            Ok(Finding::Found | Finding::Unknown) => return Ok(()),
            Err(problem) => {
                report::log(&format!(
                    "jsv: cannot tell whether a host has {}: {problem}; the job is let in",
                    image.familiar()
                ));
                return Ok(());
            }
        };
        let e = Error::ImageNowhere {
            image: image.familiar(),
            wanted: if request.contains(advertise::PULL_MARK) {
                "holds or may pull"
            } else {
                "holds"
            },
            hosts,
        };
        Err(match how {
            Unavailable::Warn => Verdict::Warn(format!(
                "LOG WARNING qdock: {}; the job waits",
                report::one_line(&e.to_string())
            )),
            _ => Verdict::Refuse(e),
        })
    }

    /// The job's hard and soft `qdock_images` requests, as the admin chose.
    fn image_requests(&self, image: &ImageRef) -> (Option<String>, Option<String>) {
        let Some(request) = advertise::request(image, &self.config.scheduling.advertise) else {
            return (None, None);
        };
        match self.config.scheduling.image_request {
            ImageRequest::None => (None, None),
            ImageRequest::Hard => (Some(request.present), None),
            ImageRequest::Soft => (None, Some(request.present)),
            ImageRequest::Auto => (Some(request.present_or_pulled), Some(request.present)),
        }
    }
}

enum Verdict {
    Refuse(Error),
    /// A `LOG` line: a client JSV prints it to the user, the qmaster writes a server JSV's to
    /// its messages file.
    Warn(String),
}

/// The refusal `qsub` prints: one line.
fn reject(e: &Error) -> String {
    format!(
        "RESULT STATE REJECT qdock: {}",
        report::one_line(&e.to_string())
    )
}

/// A job's `-l` list as the JSV protocol carries it: `name=value,name=value`, `NONE` when
/// empty; the entries are kept as the job wrote them.
struct ResourceList {
    entries: Vec<String>,
    changed: bool,
}

impl ResourceList {
    fn parse(param: Option<&String>) -> ResourceList {
        let entries = param
            .map(String::as_str)
            .filter(|p| *p != "NONE")
            .unwrap_or("")
            // Grid Engine splits on both (centry_list_parse_from_string()).
            .split([',', ' '])
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        ResourceList {
            entries,
            changed: false,
        }
    }

    fn names_any(&self, names: &[&str]) -> bool {
        self.entries
            .iter()
            .any(|e| names.contains(&e.split('=').next().unwrap_or(e)))
    }

    fn push(&mut self, name: &str, value: &str) {
        self.entries.push(format!("{name}={value}"));
        self.changed = true;
    }

    fn render(&self) -> String {
        self.entries.join(",")
    }
}

/// Serves jobs with the config at `path` (`config` as loaded from it).
pub fn serve(config: Config, path: PathBuf) -> std::io::Result<()> {
    let jsv = Jsv::new(config, Some(path), CellImages::qmaster());
    talk(jsv, std::io::stdin().lock(), std::io::stdout().lock())
}

/// Lines are bytes, not text: a job's environment (qrsh sends the user's) may hold any value,
/// and one that is not UTF-8 must not end the JSV, which would reject the job. Lossy is
/// enough: such a value is never a valid image reference.
fn talk(mut jsv: Jsv, mut input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let Some(answer) = jsv.handle(String::from_utf8_lossy(&line).trim_end()) else {
            return Ok(());
        };
        for a in answer {
            writeln!(output, "{a}")?;
        }
        output.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No host reports: nothing is known of the hosts' images, the jobs go in as before.
    fn nothing_known() -> CellImages {
        CellImages::asking(Box::new(|| Ok(String::new())))
    }

    fn session(config: &Config, lines: &[&str]) -> Vec<String> {
        session_with(config, nothing_known(), lines)
    }

    fn session_with(config: &Config, cell: CellImages, lines: &[&str]) -> Vec<String> {
        let mut jsv = Jsv::new(config.clone(), None, cell);
        lines
            .iter()
            .map_while(|l| jsv.handle(l))
            .flatten()
            .collect()
    }

    fn config(toml: &str) -> Config {
        Config::parse(toml, std::path::Path::new("qdock.toml")).unwrap()
    }

    #[test]
    fn jobs_without_image_are_untouched() {
        let out = session(
            &Config::default(),
            &[
                "START",
                "PARAM VERSION 1.0",
                "PARAM CMDNAME job.sh",
                "PARAM l_hard h_rt=60",
                "ENV ADD HOME /home/alice",
                "BEGIN",
                "QUIT",
            ],
        );
        assert_eq!(out, ["SEND ENV", "STARTED", "RESULT STATE ACCEPT"]);
    }

    #[test]
    fn adds_a_hard_request_for_where_the_image_is_or_comes_and_a_soft_one_for_where_it_is() {
        let out = session(
            &Config::default(),
            &[
                "START",
                "PARAM CMDNAME job.sh",
                "ENV ADD IMAGE qdock/busybox:1",
                "BEGIN",
                // The next job starts afresh and keeps its own -l list.
                "START",
                "PARAM l_hard h_rt=60,mem_free=1G",
                "PARAM l_soft arch=lx-amd64",
                "ENV ADD IMAGE docker.io/library/fastqc:0.11.9",
                "BEGIN",
            ],
        );
        assert_eq!(
            out,
            [
                "SEND ENV",
                "STARTED",
                "PARAM l_hard qdock_engine=1,qdock_images=*;qdock/busybox:1;*|*;+pull;*",
                "PARAM l_soft qdock_images=*;qdock/busybox:1;*",
                "RESULT STATE CORRECT",
                "SEND ENV",
                "STARTED",
                "PARAM l_hard h_rt=60,mem_free=1G,qdock_engine=1,qdock_images=*;fastqc:0.11.9;*|*;+pull;*",
                "PARAM l_soft arch=lx-amd64,qdock_images=*;fastqc:0.11.9;*",
                "RESULT STATE CORRECT",
            ]
        );
    }

    /// Which host may pull is each host's own config (its sensor's `+pull`): the submit
    /// host's policy changes nothing.
    #[test]
    fn error_verification_becomes_a_warning_for_the_requests_it_cannot_judge() {
        let job = |w: &str, image: &str| {
            let mut lines = vec!["START", "PARAM CMDNAME job.sh"];
            lines.extend([w, image, "BEGIN"].into_iter().filter(|l| !l.is_empty()));
            session(&Config::default(), &lines)
        };
        let answer = job("PARAM w e", "ENV ADD IMAGE qdock/busybox:1");
        assert!(answer.contains(&"PARAM w w".to_string()), "{answer:?}");
        // Other levels, and jobs without an image, stay as they are.
        for w in ["PARAM w v", "PARAM w n", ""] {
            let answer = job(w, "ENV ADD IMAGE qdock/busybox:1");
            assert!(
                !answer.iter().any(|l| l.starts_with("PARAM w")),
                "{answer:?}"
            );
        }
        let answer = job("PARAM w e", "");
        assert!(
            !answer.iter().any(|l| l.starts_with("PARAM w")),
            "{answer:?}"
        );
    }

    #[test]
    fn the_submit_hosts_pull_policy_does_not_choose() {
        let job = ["START", "ENV ADD IMAGE busybox", "BEGIN"];
        let never = session(&config("[images]\npull = \"never\"\n"), &job);
        for pull in ["missing", "always"] {
            let c = config(&format!("[images]\npull = \"{pull}\"\n"));
            assert_eq!(session(&c, &job), never, "{pull}");
        }
    }

    #[test]
    fn the_admin_chooses_the_requests() {
        let job = ["START", "ENV ADD IMAGE fastqc:0.11.9", "BEGIN"];
        for (toml, expected) in [
            (
                "[images]\npull = \"always\"\n[scheduling]\nimage_request = \"hard\"\n",
                vec!["PARAM l_hard qdock_engine=1,qdock_images=*;fastqc:0.11.9;*"],
            ),
            (
                "[scheduling]\nimage_request = \"soft\"\n",
                vec![
                    "PARAM l_hard qdock_engine=1",
                    "PARAM l_soft qdock_images=*;fastqc:0.11.9;*",
                ],
            ),
            (
                "[scheduling]\nimage_request = \"none\"\n",
                vec!["PARAM l_hard qdock_engine=1"],
            ),
            // Never advertised, so never requested: the request could only keep it pending.
            (
                "[scheduling]\nadvertise = [\"bio/*\"]\n",
                vec!["PARAM l_hard qdock_engine=1"],
            ),
            (
                "[scheduling]\nengine_request = false\nimage_request = \"none\"\n",
                vec![],
            ),
        ] {
            let out = session(&config(toml), &job);
            let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
            expected.push(
                if expected.is_empty() {
                    "RESULT STATE ACCEPT"
                } else {
                    "RESULT STATE CORRECT"
                }
                .into(),
            );
            assert_eq!(out[2..], expected, "{toml}");
        }
    }

    #[test]
    fn a_job_naming_our_complexes_keeps_its_own_requests() {
        let c = Config::default();
        let out = session(
            &c,
            &[
                "START",
                "PARAM l_hard qdock_images=*",
                "PARAM l_soft qde=1",
                "ENV ADD IMAGE qdock/busybox:1",
                "BEGIN",
                "START",
                "PARAM l_hard qdi=*;qdock/busybox:1;*,qdock_engine=1",
                "ENV ADD IMAGE qdock/busybox:1",
                "BEGIN",
            ],
        );
        assert_eq!(
            out,
            [
                "SEND ENV",
                "STARTED",
                "RESULT STATE ACCEPT",
                "SEND ENV",
                "STARTED",
                "RESULT STATE ACCEPT"
            ]
        );
    }

    #[test]
    fn rejects_bad_and_disallowed_images_with_the_reason() {
        let mut c = Config::default();
        c.images.allow = vec![crate::pattern::ImagePattern::parse("qdock/*").unwrap()];
        let out = session(
            &c,
            &[
                "START",
                "ENV ADD IMAGE $(id)",
                "BEGIN",
                "ENV ADD IMAGE evil.example.com/x:1",
                "BEGIN",
            ],
        );
        assert!(
            out[2].starts_with(
                "RESULT STATE REJECT qdock: IMAGE=\"$(id)\" is not a valid image reference"
            ),
            "{}",
            out[2]
        );
        assert!(out[3].contains("not allowed"), "{}", out[3]);
    }

    #[test]
    fn hostile_images_never_reach_the_request_lists() {
        // A request list is split at `,` and blanks, and `*;` would widen the match: only a
        // reference that passed Docker's grammar becomes part of a request.
        for image in ["x:1,qdock_engine=0", "x:1 h_rt=1", "x;*", "*", "x:1\\n"] {
            let line = format!("ENV ADD IMAGE {image}");
            let out = session(&Config::default(), &["START", &line, "BEGIN"]);
            assert_eq!(out.len(), 3, "{out:?}");
            assert!(out[2].starts_with("RESULT STATE REJECT qdock: "), "{out:?}");
        }
    }

    #[test]
    fn variables_that_are_not_utf8_do_not_end_the_dialogue() {
        let input: &[u8] =
            b"START\nENV ADD LESSOPEN |\xff\xfe\nENV ADD IMAGE qdock/busybox:1\nBEGIN\nQUIT\n";
        let mut output = Vec::new();
        let jsv = Jsv::new(Config::default(), None, nothing_known());
        talk(jsv, input, &mut output).unwrap();
        assert_eq!(
            String::from_utf8(output).unwrap(),
            "SEND ENV\nSTARTED\nPARAM l_hard qdock_engine=1,qdock_images=*;qdock/busybox:1;*|*;+pull;*\nPARAM l_soft qdock_images=*;qdock/busybox:1;*\nRESULT STATE CORRECT\n"
        );
    }

    const HOSTS: &str = "\
vm      lx-amd64 2 1 2 2 0.5 1G 1G 0 0
    Host Resource(s):      hl:qdock_images=;qdock/busybox:1;
node1   lx-amd64 2 1 2 2 0.5 1G 1G 0 0
    Host Resource(s):      hl:qdock_images=;
node2   lx-amd64 2 1 2 2    - 1G  - 0 -
";

    fn hosts() -> CellImages {
        CellImages::asking(Box::new(|| Ok(HOSTS.to_string())))
    }

    #[test]
    fn an_image_no_host_holds_or_may_pull_is_refused_naming_what_they_hold() {
        let job = |image: &str| {
            let line = format!("ENV ADD IMAGE {image}");
            session_with(&Config::default(), hosts(), &["START", &line, "BEGIN"])
        };
        let out = job("qdock/absent:404");
        assert_eq!(
            out[2..],
            [
                "RESULT STATE REJECT qdock: no execution host holds or may pull image qdock/absent:404 \
                 (their reports: vm: qdock/busybox:1; node1: no images; node2: silent (no load report)); \
                 ask for an image a host holds, or ask an admin to pull this one there"
            ]
        );
        let out = job("qdock/busybox:1");
        assert_eq!(out.last().unwrap(), "RESULT STATE CORRECT", "{out:?}");
    }

    #[test]
    fn the_admin_may_let_such_jobs_wait_or_not_look() {
        let job = ["START", "ENV ADD IMAGE qdock/absent:404", "BEGIN"];
        let warn = config("[scheduling]\nimage_unavailable = \"warn\"\n");
        let out = session_with(&warn, hosts(), &job);
        assert!(
            out[2].starts_with(
                "LOG WARNING qdock: no execution host holds or may pull image qdock/absent:404"
            ) && out[2].ends_with("; the job waits"),
            "{out:?}"
        );
        assert_eq!(out.last().unwrap(), "RESULT STATE CORRECT", "{out:?}");
        let ignore = config("[scheduling]\nimage_unavailable = \"ignore\"\n");
        let never_asked = CellImages::asking(Box::new(|| panic!("asked the qmaster")));
        let out = session_with(&ignore, never_asked, &job);
        assert_eq!(out.last().unwrap(), "RESULT STATE CORRECT", "{out:?}");
        // Only holders count when the admin asks only for them.
        let hard = config("[images]\npull = \"always\"\n[scheduling]\nimage_request = \"hard\"\n");
        let out = session_with(&hard, hosts(), &job);
        assert!(out[2].contains("no execution host holds image"), "{out:?}");
        // No hard image request, nothing to refuse.
        let soft = config("[scheduling]\nimage_request = \"soft\"\n");
        let out = session_with(&soft, hosts(), &job);
        assert_eq!(out.last().unwrap(), "RESULT STATE CORRECT", "{out:?}");
    }

    #[test]
    fn a_qmaster_that_cannot_be_asked_lets_the_job_in() {
        let failing = CellImages::asking(Box::new(|| Err("qhost gave no answer".into())));
        let out = session_with(
            &Config::default(),
            failing,
            &["START", "ENV ADD IMAGE qdock/absent:404", "BEGIN"],
        );
        assert_eq!(out.last().unwrap(), "RESULT STATE CORRECT", "{out:?}");
    }

    #[test]
    fn reads_the_v_parameter_too() {
        let c = Config::default();
        let out = session(&c, &["START", "PARAM v FOO=1,IMAGE=Bad", "BEGIN"]);
        assert!(
            out[2].contains("REJECT") && out[2].contains("lowercase"),
            "{}",
            out[2]
        );
    }
}
