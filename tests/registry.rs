//! Image pull policies against a real registry: Debian's docker-registry on 127.0.0.1, which
//! the engine treats as an insecure (plain HTTP) registry already.

#[macro_use]
mod common;

use common::registry::Registry;
use common::*;

/// A registry of the test's own holding an image of its own (the test image with a label
/// naming the registry) as `reference` (a tag) and `digest_ref` (its digest), neither of
/// which this host has: only a pull brings them. An image of its own, because the engine
/// lists every repository an image was pulled from or pushed to, and the tests run in
/// parallel.
struct Pushed {
    registry: Registry,
    reference: String,
    digest_ref: String,
}

impl Pushed {
    fn new() -> Pushed {
        let registry = Registry::start("127.0.0.1");
        let repo = format!("{}/qdock/pulltest", registry.addr);
        let context = registry.image_context();
        let mut pushed = Pushed {
            reference: format!("{repo}:{}", std::process::id()),
            digest_ref: String::new(),
            registry,
        };
        docker_text(&[
            "build",
            "-q",
            "-t",
            &pushed.reference,
            &context.display().to_string(),
        ]);
        docker_text(&["push", &pushed.reference]);
        pushed.digest_ref = inspect(&pushed.reference, "{{index .RepoDigests 0}}");
        assert!(
            pushed.digest_ref.starts_with(&format!("{repo}@sha256:")),
            "{}",
            pushed.digest_ref
        );
        pushed.forget();
        pushed
    }

    /// Removes every local name of the pushed image, so only a pull can bring it back.
    fn forget(&self) {
        let _ = docker(&["rmi", &self.reference]);
        let _ = docker(&["rmi", &self.digest_ref]);
    }

    /// A reference in this registry with `rest` after the registry's address.
    fn elsewhere(&self, rest: &str) -> String {
        format!("{}/{rest}", self.registry.addr)
    }
}

impl Drop for Pushed {
    fn drop(&mut self) {
        self.forget();
    }
}

fn job(policy: &str, image: &str) -> Job {
    Job::new("cat /qdock-image-marker")
        .image(image)
        .with_config(&format!("[images]\npull = \"{policy}\"\n"))
}

#[test]
fn never_refuses_an_absent_image_for_good() {
    require_engine!();
    let pushed = Pushed::new();
    // Named with the fix.
    let out = job("never", &pushed.reference).run();
    out.assert_code(100)
        .assert_qdock_line(&["not on this host", "pull = \"never\""]);
}

#[test]
fn missing_pulls_runs_and_records_the_digest_that_ran() {
    require_engine!();
    let pushed = Pushed::new();
    let j = job("missing", &pushed.reference);
    let out = j.run();
    out.assert_code(0)
        .assert_qdock_line(&["pulling image", &pushed.reference, "not on this host"])
        .assert_qdock_line(&["pulling image", "layer", "(1 in place)"])
        .assert_qdock_line(&["pulled image", &pushed.reference])
        .assert_qdock_line(&["runs", &pushed.digest_ref]);
    assert_eq!(out.stdout_text(), "qdock/busybox:1\n");
    j.assert_no_container();
}

#[test]
fn missing_pulls_by_digest() {
    require_engine!();
    let pushed = Pushed::new();
    job("missing", &pushed.digest_ref).run().assert_code(0);
}

#[test]
fn a_digest_the_registry_lacks_is_refused_for_good() {
    require_engine!();
    let pushed = Pushed::new();
    let wrong = pushed.elsewhere(&format!("qdock/pulltest@sha256:{}", "0".repeat(64)));
    job("missing", &wrong)
        .run()
        .assert_code(100)
        .assert_qdock_line(&["cannot be pulled"]);
}

#[test]
fn an_image_the_registry_lacks_is_refused_for_good() {
    require_engine!();
    let pushed = Pushed::new();
    let unknown = pushed.elsewhere("qdock/no-such-image:1");
    job("missing", &unknown)
        .run()
        .assert_code(100)
        .assert_qdock_line(&["cannot be pulled"]);
}

#[test]
fn always_pulls_although_the_image_is_present() {
    require_engine!();
    let pushed = Pushed::new();
    docker_text(&["pull", &pushed.reference]);
    job("always", &pushed.reference).run().assert_code(0);
}

#[test]
fn a_registry_that_is_down_requeues() {
    require_engine!();
    let mut pushed = Pushed::new();
    pushed.registry.stop();
    // May pass later, so the job is requeued (99), not failed.
    let j = job("missing", &pushed.reference);
    j.run()
        .assert_code(99)
        .assert_qdock_line(&["pulling image", "requeued"]);
    j.assert_no_container();
}

/// The per-host record names the exact image a job ran: its ID and the digest it was pulled
/// by, whatever the tag names later.
#[test]
fn the_usage_record_names_the_image_id_and_digest_that_ran() {
    require_engine!();
    let pushed = Pushed::new();
    let j = Job::new("cat /qdock-image-marker").image(&pushed.reference);
    let record = j.dir.join("usage.jsonl");
    write_file(&record, "", 0, docker_gid().unwrap(), 0o660);
    let j = j.with_config(&format!(
        "[images]\npull = \"missing\"\n[usage]\nrecord = \"{}\"\n",
        record.display()
    ));
    j.run_ok();
    let text = std::fs::read_to_string(&record).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let c = &lines[0]["container"];
    assert_eq!(c["image"], pushed.reference.as_str(), "{text}");
    assert_eq!(c["repo_digest"], pushed.digest_ref.as_str(), "{text}");
    assert_eq!(
        c["image_id"],
        inspect(&pushed.digest_ref, "{{.Id}}"),
        "{text}"
    );
    assert_eq!(lines[0]["job"], j.id);
}
