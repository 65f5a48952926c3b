//! The cell's view of every execution host's images, for `qdock jsv`: asked of the qmaster
//! with `qhost -F qdock_images`, and kept a while for the jobs whose image it shows.
//!
//! A server JSV talks to the qmaster while a worker thread waits for its verdict (the global
//! lock released, sge_jsv.c); 8.1.9 has two worker threads, so two JSVs asking at once leave
//! none to answer until one gives up. Hence a deadline well inside the qmaster's 10 s
//! `jsv_timeout`, after which the job is let in as before; and hence the reuse: a view that
//! shows a job's image stands for [`REUSE`], while a refusal is always decided on a fresh one.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::host_images::{self, Finding, HostImages};

/// How long a view that found a job's image answers for later jobs. The hosts' reports are
/// themselves one `load_report_time` old; at worst a job is let in that waits, as before.
pub const REUSE: Duration = Duration::from_secs(30);
/// The longest a query may take.
pub const DEADLINE: Duration = Duration::from_secs(3);

/// Where the hosts' reports come from: qhost's text, or why there is none.
type Ask = Box<dyn FnMut() -> Result<String, String>>;

pub struct CellImages {
    ask: Ask,
    seen: Option<(Instant, Vec<HostImages>)>,
}

impl CellImages {
    /// Asks the qmaster through `qhost`.
    pub fn qmaster() -> CellImages {
        CellImages::asking(Box::new(qhost))
    }

    /// Asks `ask` (tests hand in qhost's text).
    pub fn asking(ask: Ask) -> CellImages {
        CellImages { ask, seen: None }
    }

    /// Whether a host satisfies `request`; Err when the qmaster could not be asked.
    pub fn find(&mut self, request: &str) -> Result<Finding, String> {
        // Reused only for an image a host held: whether a host may pull is the admin's
        // setting of the moment, and one switched off meanwhile must not let a job in.
        let held: Vec<&str> = request
            .split('|')
            .filter(|alternative| !alternative.contains(crate::advertise::PULL_MARK))
            .collect();
        if let Some((at, hosts)) = &self.seen
            && at.elapsed() < REUSE
            && !held.is_empty()
            && host_images::find(&held.join("|"), hosts) == Finding::Found
        {
            return Ok(Finding::Found);
        }
        let hosts = host_images::parse_qhost(&(self.ask)()?);
        let finding = host_images::find(request, &hosts);
        self.seen = Some((Instant::now(), hosts));
        Ok(finding)
    }
}

/// `qhost -F qdock_images`, cut off at [`DEADLINE`].
fn qhost() -> Result<String, String> {
    let mut child = Command::new("qhost")
        .args(["-F", "qdock_images"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run qhost: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let (send, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = send.send(stdout.read_to_end(&mut text).map(|_| text));
    });
    let outcome = received.recv_timeout(DEADLINE);
    if outcome.is_err() {
        // Still our unreaped child: its pid is no other process's.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| format!("qhost: {e}"))?;
    match outcome {
        Ok(Ok(text)) if status.success() => Ok(String::from_utf8_lossy(&text).into_owned()),
        Ok(Ok(_)) => Err(format!("qhost failed ({status})")),
        Ok(Err(e)) => Err(format!("reading qhost: {e}")),
        Err(_) => Err(format!(
            "qhost gave no answer within {} s",
            DEADLINE.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn counting(text: &'static str) -> (CellImages, Rc<Cell<u32>>) {
        let asked = Rc::new(Cell::new(0));
        let count = asked.clone();
        let cell = CellImages::asking(Box::new(move || {
            count.set(count.get() + 1);
            Ok(text.to_string())
        }));
        (cell, asked)
    }

    const ONE_HOST: &str =
        "vm  lx-amd64 2 1 2 2 0.5 1G 1G 0 0\n    Host Resource(s):      hl:qdock_images=;a:1;\n";

    #[test]
    fn a_view_that_found_the_image_is_reused_a_refusal_is_asked_afresh() {
        let (mut cell, asked) = counting(ONE_HOST);
        assert_eq!(cell.find("*;a:1;*"), Ok(Finding::Found));
        assert_eq!(cell.find("*;a:1;*"), Ok(Finding::Found));
        assert_eq!(asked.get(), 1);
        assert!(matches!(cell.find("*;b:1;*"), Ok(Finding::Nowhere(_))));
        assert!(matches!(cell.find("*;b:1;*"), Ok(Finding::Nowhere(_))));
        assert_eq!(asked.get(), 3);
    }

    /// A job found only through a host that may pull asks afresh: the admin may have
    /// switched pulling off since.
    #[test]
    fn a_view_is_not_reused_for_a_host_that_may_pull() {
        let (mut cell, asked) = counting(
            "vm  lx-amd64 2 1 2 2 0.5 1G 1G 0 0\n    Host Resource(s):      hl:qdock_images=;a:1;+pull;\n",
        );
        assert_eq!(cell.find("*;b:1;*|*;+pull;*"), Ok(Finding::Found));
        assert_eq!(cell.find("*;b:1;*|*;+pull;*"), Ok(Finding::Found));
        assert_eq!(asked.get(), 2);
        assert_eq!(cell.find("*;a:1;*|*;+pull;*"), Ok(Finding::Found));
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn a_failed_query_is_told() {
        let mut cell = CellImages::asking(Box::new(|| Err("qhost failed".into())));
        assert_eq!(cell.find("*;a:1;*"), Err("qhost failed".into()));
    }
}
