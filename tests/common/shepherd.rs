//! A stand-in for Open Cluster Scheduler's shepherd, which CI cannot run (its source may not
//! be built here). It does what OCS 9.1's `sge_shepherd` does for the parts qdock relies on
//! (`shepherd.cc`): as root, it writes its own pid into the job's spool entry (`pid`), forks
//! the job (the starter, with the job's group) and records the job's pid (`job_pid`); for
//! each method it forks `sh -c "METHOD LINE"` as the job's owner with the owner's own groups
//! and *not* the job's (`start_async_command`), in the job's environment and working
//! directory, with stdout and stderr on /dev/null. It is no subreaper, like the real one.
//!
//! A root `sh` plays it, reading `USER LINE` requests on stdin and answering `method N` with
//! each method's exit code; closing stdin lets it wait for the job and answer `job N`. The
//! job's stdout and stderr go to [`Shepherd::OUTPUT`] and `ERRORS` in the job's directory,
//! as the real one's go to the `.o` and `.e` files.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::{Job, User};

const SHEPHERD: &str = r#"
entry=$1 out=$2 err=$3; shift 3
echo $$ > "$entry/pid"
"$@" >"$out" 2>"$err" &
job=$!
echo $job > "$entry/job_pid"
echo started
while read -r user line; do
    setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=-all -- \
        /bin/sh -c "$line" </dev/null >/dev/null 2>&1 &
    wait $!
    echo "method $?"
done
wait $job
echo "job $?"
"#;

pub struct Shepherd {
    child: Child,
    requests: Option<ChildStdin>,
    answers: BufReader<ChildStdout>,
}

impl Shepherd {
    pub const OUTPUT: &'static str = "shepherd.o";
    pub const ERRORS: &'static str = "shepherd.e";

    /// Starts `job` as `command` (the job's own, as [`Job::command`] makes it) under the
    /// shepherd, and returns once the spool names both.
    pub fn start(job: &Job, command: &Command) -> Shepherd {
        let mut shepherd = Command::new("/bin/sh");
        shepherd
            .arg("-c")
            .arg(SHEPHERD)
            .arg("sge_shepherd")
            .arg(job.spool_entry())
            .arg(job.dir.join(Self::OUTPUT))
            .arg(job.dir.join(Self::ERRORS))
            .arg(command.get_program())
            .args(command.get_args())
            .env_clear()
            .envs(job.environment())
            .current_dir(&job.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // The starter and the methods it forks see the engine under test's config.
        super::engine::seeing_system_config(&mut shepherd);
        let mut child = shepherd.spawn().expect("start the shepherd");
        let requests = child.stdin.take();
        let answers = BufReader::new(child.stdout.take().expect("the shepherd's answers"));
        let mut shepherd = Shepherd {
            child,
            requests,
            answers,
        };
        assert_eq!(shepherd.answer(), "started");
        shepherd
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        self.answers
            .read_line(&mut line)
            .expect("the shepherd answers");
        line.trim_end().to_string()
    }

    /// Runs a method line as the shepherd runs one for `user` (the job's owner, unless a
    /// test plays someone else); returns its exit code.
    pub fn method(&mut self, user: User, line: &str) -> i32 {
        let requests = self
            .requests
            .as_mut()
            .expect("the shepherd still takes requests");
        writeln!(requests, "{} {line}", user.name).expect("ask the shepherd");
        let answer = self.answer();
        answer
            .strip_prefix("method ")
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("the shepherd answered {answer:?}"))
    }

    /// Waits for the job's end; its exit code.
    pub fn wait_job(mut self) -> i32 {
        drop(self.requests.take());
        let answer = self.answer();
        let _ = self.child.wait();
        answer
            .strip_prefix("job ")
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("the shepherd answered {answer:?}"))
    }
}

impl Drop for Shepherd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
