//! `qdock jsv`: a Grid Engine Job Submission Verifier that checks a job's image request at
//! `qsub` time, so a bad or disallowed image is refused at once instead of sending the job
//! to `Eqw` on an execution host. It checks the reference and the allow list only: whether
//! the image is present is a question for each execution host.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use crate::config::Config;
use crate::policy;

/// The protocol of jsv(1): START, then PARAM and ENV lines, then BEGIN, per job; QUIT ends.
pub struct Jsv<'a> {
    config: &'a Config,
    env: HashMap<String, String>,
    params: HashMap<String, String>,
}

impl<'a> Jsv<'a> {
    pub fn new(config: &'a Config) -> Self {
        Jsv {
            config,
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
            "START" => vec!["SEND ENV".into(), "STARTED".into()],
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
                vec![verdict]
            }
            "" => vec![],
            other => vec![format!("ERROR qdock jsv got unknown command {other:?}")],
        };
        Some(answer)
    }

    fn image(&self) -> Option<String> {
        let name = &self.config.job.image_variable;
        self.env.get(name).cloned().or_else(|| {
            // Some clients send the -v list as one parameter: NAME=value,NAME2=value2.
            let list = self.params.get("v")?;
            list.split(',').find_map(|kv| {
                kv.strip_prefix(name.as_str())?
                    .strip_prefix('=')
                    .map(str::to_string)
            })
        })
    }

    fn verdict(&self) -> String {
        match self.image() {
            None => "RESULT STATE ACCEPT".into(),
            Some(image) => match policy::check_image(&image, &self.config.images) {
                Ok(_) => "RESULT STATE ACCEPT".into(),
                Err(e) => format!("RESULT STATE REJECT qdock: {e}"),
            },
        }
    }
}

pub fn serve(config: &Config) -> std::io::Result<()> {
    let mut jsv = Jsv::new(config);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Some(answer) = jsv.handle(line?.trim_end()) else {
            break;
        };
        for a in answer {
            writeln!(stdout, "{a}")?;
        }
        stdout.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(config: &Config, lines: &[&str]) -> Vec<String> {
        let mut jsv = Jsv::new(config);
        lines
            .iter()
            .map_while(|l| jsv.handle(l))
            .flatten()
            .collect()
    }

    #[test]
    fn accepts_jobs_without_image_and_good_images() {
        let c = Config::default();
        let out = session(
            &c,
            &[
                "START",
                "PARAM CMDNAME job.sh",
                "BEGIN",
                "ENV ADD IMAGE qdock/busybox:1",
                "BEGIN",
                "QUIT",
            ],
        );
        assert_eq!(
            out,
            [
                "SEND ENV",
                "STARTED",
                "RESULT STATE ACCEPT",
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
