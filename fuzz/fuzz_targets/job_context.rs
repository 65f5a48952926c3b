//! `JobContext::parse` (and the container spec built from it) on any environment and argv:
//! never a panic; an accepted job has a container name Docker accepts and that cannot be
//! mistaken for another job's, and the spec keeps its security settings whatever the input.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use qdock::config::Config;
use qdock::image_ref::ImageRef;
use qdock::job::{Env, JobClaim, JobContext};
use qdock::job_proof::{JobKey, Proof, Proven};
use qdock::labels::Label;
use qdock::limits::Limits;
use qdock::privilege::Identity;
use qdock::spec::{self, Anchored, Host, Inputs, Output, ResolvedImage, Sources, Stdio};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Raw pairs, plus pairs for the variables the parser reads (more likely to matter).
    env: Vec<(Vec<u8>, Vec<u8>)>,
    known: Vec<(u8, Vec<u8>)>,
    argv: Vec<Vec<u8>>,
    job_arg: Option<String>,
    task_arg: Option<String>,
}

const KNOWN: [&str; 14] = [
    "JOB_ID",
    "SGE_TASK_ID",
    "SGE_CELL",
    "JOB_NAME",
    "QUEUE",
    "NSLOTS",
    "HOME",
    "TMPDIR",
    "IMAGE",
    "QDOCK_MOUNTS",
    "SGE_STARTER_SHELL_PATH",
    "SGE_STARTER_SHELL_START_MODE",
    "SGE_STARTER_USE_LOGIN_SHELL",
    "PATH",
];

fn name_ok(name: &str) -> bool {
    // qdock-<cell>-<job>-<task>: Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]*, and unambiguous.
    let Some(rest) = name.strip_prefix("qdock-") else {
        return false;
    };
    let mut parts = rest.rsplitn(3, '-');
    let (task, job, cell) = (parts.next(), parts.next(), parts.next());
    matches!((task, job, cell), (Some(t), Some(j), Some(c))
        if t.parse::<u64>().is_ok()
            && j.parse::<u64>().is_ok_and(|j| j > 0)
            && !c.is_empty()
            && c.len() <= 64
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)))
}

fuzz_target!(|input: Input| {
    let mut pairs: Vec<(OsString, OsString)> = input
        .env
        .into_iter()
        .map(|(k, v)| (OsString::from_vec(k), OsString::from_vec(v)))
        .collect();
    pairs.extend(input.known.into_iter().map(|(i, v)| {
        (
            OsString::from(KNOWN[usize::from(i) % KNOWN.len()]),
            OsString::from_vec(v),
        )
    }));
    let env = Env(pairs);
    let argv: Vec<OsString> = input.argv.into_iter().map(OsString::from_vec).collect();

    if let Ok(claim) =
        JobClaim::from_args_or_env(input.job_arg.as_deref(), input.task_arg.as_deref(), &env)
    {
        let key = JobKey::for_tests("default", claim.job_id, claim.task_id);
        assert!(name_ok(&key.container_name()), "{key:?}");
    }

    let Ok(job) = JobContext::parse(env, argv, "IMAGE", "QDOCK_MOUNTS") else {
        return;
    };
    // Nothing of the environment names the container: the proof does (here, as for root,
    // the config's cell).
    let proven = Proven {
        key: JobKey::for_tests("default", job.claim.job_id, job.claim.task_id),
        proof: Proof::Skipped,
    };
    let name = proven.key.container_name();
    assert!(name_ok(&name), "{name:?}");

    // The spec: whatever the job asked for, the security settings stay.
    let config = Config::default();
    let image = ResolvedImage {
        reference: ImageRef::parse("qdock/busybox:1").unwrap(),
        id: "sha256:0".into(),
        repo_digest: None,
        env: vec![
            "PATH=/opt/tool/bin:/bin".into(),
            "TOOL_HOME=/opt/tool".into(),
        ],
    };
    let who = Identity {
        uid: 2001,
        gid: 2001,
        groups: vec![65400],
        name: "alice".into(),
    };
    let pipes = Stdio {
        helper: "/usr/local/bin/qdock-stdio".into(),
        stdout: "/var/lib/qdock/stdio/j/stdout".into(),
        stderr: "/var/lib/qdock/stdio/j/stderr".into(),
        go: "/var/lib/qdock/stdio/j/go".into(),
        profile: "/var/lib/qdock/stdio/j/profile".into(),
    };
    let host = Host {
        hostname: "node".into(),
        cpus: 2,
        affinity: vec![0, 1],
        online_cpus: 2,
        cwd: "/home/alice".into(),
        sources: Sources {
            script: Some(job.script.clone()),
            home: Some("/home/alice".into()),
            cwd: Some("/home/alice".into()),
            // A TMPDIR below /tmp is anchored there, as the execd makes it (the user's entry
            // in a sticky directory); any other stands for its own anchor.
            tmpdir: job.tmpdir.clone().map(|path| Anchored {
                anchor: match path.starts_with("/tmp") && path != Path::new("/tmp") {
                    true => "/tmp".into(),
                    false => path.clone(),
                },
                path,
            }),
            pe_hostfile: None,
        },
        seccomp_profile: None,
        starter: None,
        output: Output::Pipes(pipes.clone()),
        gpus: Default::default(),
    };
    let inputs = Inputs {
        job: &job,
        proven: &proven,
        config: &config,
        who: &who,
        image: &image,
        limits: &Limits::default(),
        user_mounts: &[],
        host: &host,
    };
    if let Ok((spec, _notes)) = spec::build(&inputs) {
        assert_eq!(spec.user, "2001:2001");
        assert_eq!(spec.name, name);
        // The hardening, whatever the job asked for.
        assert!(spec.cap_add.is_empty());
        assert_eq!(spec.cap_drop, ["ALL"]);
        assert!(!spec.privileged);
        assert_eq!(spec.ipc_mode, "private");
        assert_eq!(spec.pid_mode, None);
        assert_eq!(spec.memory_swap, spec.memory);
        assert!(spec.devices.is_empty());
        assert!(
            spec.security_opt
                .iter()
                .any(|o| o == "no-new-privileges:true")
        );
        assert_eq!(spec.network, "host");
        assert_eq!(spec.labels[Label::OwnerUid.key()], "2001");
        for e in &spec.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            assert!(
                key != "PATH" && !key.starts_with("LD_") && !key.starts_with("DOCKER_"),
                "{e:?} passed"
            );
        }
        // The helper waits for the starter's go-ahead; its only other work: TMPDIR's link,
        // from the container's /tmp through the host's /tmp mounted out of the way.
        assert_eq!(spec.entrypoint[1..3], ["--wait", spec::STDIO_GO]);
        if spec.entrypoint.get(3).map(String::as_str) == Some("--link") {
            assert!(
                spec.entrypoint[4].starts_with("/tmp/"),
                "{:?}",
                spec.entrypoint
            );
            assert!(
                spec.entrypoint[5].starts_with(spec::HOST_TMP),
                "{:?}",
                spec.entrypoint
            );
        }
        // A profile only with its mount, read-only, from the starter's own directory.
        let profile = spec
            .mounts
            .iter()
            .find(|m| m.target == Path::new(spec::IMAGE_ENV_PROFILE));
        assert_eq!(profile.is_some(), spec.profile.is_some());
        if let Some(m) = profile {
            assert!(m.read_only && m.source == pipes.profile);
        }
        // The output helper and its pipes come first, read-only, whatever the job asked for;
        // the helper runs first.
        let (stdio, others) = spec.mounts.split_at(4);
        let sources: Vec<_> = stdio.iter().map(|m| &m.source).collect();
        assert_eq!(
            sources,
            [&pipes.helper, &pipes.stdout, &pipes.stderr, &pipes.go]
        );
        assert!(stdio.iter().all(|m| m.read_only));
        assert_eq!(spec.entrypoint[0], spec::STDIO_HELPER);
        // The job script is always mounted, read-only unless the same path is also a
        // writable default mount (then the caller could write it natively too).
        let script = others
            .iter()
            .find(|m| m.target != Path::new(spec::IMAGE_ENV_PROFILE))
            .expect("the script is mounted");
        assert_eq!(script.target, job.script);
        assert!(
            script.read_only
                || job.tmpdir.as_ref() == Some(&job.script)
                || job.script == std::path::Path::new("/home/alice")
        );
    }
});
