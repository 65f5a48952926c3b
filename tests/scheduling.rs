//! Image-aware scheduling through the real Grid Engine cell: what the load sensor reports
//! (`qhost -F`), what the JSV adds to a job (`qstat -j`), and where the scheduler sends jobs
//! that ask for an image. Needs the cell wired by sge-conf/register-scheduling (bin/install
//! and bin/setup-cluster do it); the harness is tests/common/cell.rs.

#[macro_use]
mod common;

use common::cell::*;
use common::hosts::set_config_value;
use common::*;

/// The lines of `qstat -j` output that name a job's `-l` requests (8.1.9 writes
/// `hard resource_list:` and `soft resource_list:`).
fn resource_lists(qstat_j: &str) -> Vec<&str> {
    qstat_j
        .lines()
        .filter(|l| l.starts_with("hard resource_list") || l.starts_with("soft resource_list"))
        .collect()
}

/// A local tag of the test image, removed again when dropped.
struct Tag(String);

impl Tag {
    fn new(name: &str) -> Tag {
        let out = docker(&["tag", IMAGE, name]);
        assert!(
            out.status.success(),
            "docker tag: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tag(name.to_string())
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = docker(&["rmi", &self.0]);
    }
}

/// A tag of the test's own (`qdock/sched-e2e-<pid><suffix>:1`) on this machine's engine,
/// once its load sensor advertises it; the tag goes when the returned guard is dropped.
fn tag_advertised_here(suffix: &str) -> (String, Tag) {
    let name = format!("qdock/sched-e2e-{}{suffix}:1", std::process::id());
    let tag = Tag::new(&name);
    wait_for_load_value(&this_host(), "qdock_images", |v| {
        advertised_images(v).contains(&name.as_str())
    });
    (name, tag)
}

#[test]
fn the_load_sensor_reports_the_engine_and_the_local_images() {
    require_cell!();
    let host = this_host();
    wait_for_load_value(&host, "qdock_engine", is_true);
    let containers = wait_for_load_value(&host, "qdock_containers", |v| !v.is_empty());
    assert!(containers.parse::<f64>().is_ok(), "{containers}");
    let images = wait_for_load_value(&host, "qdock_images", |v| {
        advertised_images(v).contains(&IMAGE)
    });
    assert!(images.starts_with(';') && images.ends_with(';'), "{images}");

    // A new local image shows in a later report, and is gone after its removal.
    let (name, tag) = tag_advertised_here("");
    drop(tag);
    wait_for_load_value(&host, "qdock_images", |v| {
        !advertised_images(v).contains(&name.as_str())
    });
}

/// The image only this host's engine holds (other hosts of the cell have their own engines),
/// asked for by hand as the README tells users: the job runs here.
#[test]
fn a_job_asking_for_a_local_image_runs_there() {
    require_cell!();
    let host = this_host();
    let (name, tag) = tag_advertised_here("-local");
    let case = Case::new("sched-local");
    case.script("marker.sh", "cat /qdock-image-marker\n");
    let request = image_request(&name);
    let job = case.qsub_image(&name, &["-l", &request, "marker.sh"]);
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    assert_eq!(acct[0].get("hostname"), host, "{acct:?}");
    assert_eq!(case.read(format!("marker.sh.o{job}")), format!("{IMAGE}\n"));
    case.assert_clean();
    drop(tag);
}

#[test]
fn the_jsv_adds_the_engine_and_image_requests_and_keeps_the_jobs_own() {
    require_cell!();
    let case = Case::new("sched-jsv");
    case.script("marker.sh", "cat /qdock-image-marker\n");
    case.script("native.sh", "echo native\n");
    // Held, so qstat -j shows them; both keep the -l the user gave.
    let image = case.qsub_image(IMAGE, &["-h", "-l", "h_rt=600", "marker.sh"]);
    let native = case.qsub(&["-cwd", "-h", "-l", "h_rt=600", "native.sh"]);

    let shown = case.qstat_j(image);
    let lists = resource_lists(&shown);
    let hard = lists
        .iter()
        .find(|l| l.starts_with("hard"))
        .copied()
        .unwrap_or("");
    let wanted = image_request(IMAGE);
    assert!(hard.contains("h_rt=600"), "{shown}");
    assert!(hard.contains("qdock_engine="), "{shown}");
    // Hard: where the image is or where the host's own config pulls it; soft: where it is.
    let soft = lists
        .iter()
        .find(|l| l.starts_with("soft"))
        .copied()
        .unwrap_or("");
    assert!(hard.contains(&image_or_pull_request(IMAGE)), "{shown}");
    assert!(soft.contains(&wanted), "{shown}");

    let shown = case.qstat_j(native);
    let lists = resource_lists(&shown);
    assert!(lists.iter().all(|l| !l.contains("qdock_")), "{shown}");
    assert!(lists.iter().any(|l| l.contains("h_rt=600")), "{shown}");

    case.client("qrls", &[&image.to_string(), &native.to_string()]);
    let acct = case.wait_done(image, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    assert_eq!(
        case.read(format!("marker.sh.o{image}")),
        format!("{IMAGE}\n")
    );
    let acct = case.wait_done(native, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    case.assert_clean();
}

/// No host holds the image and none may pull it: refused at `qsub`, exit status not 0, with
/// one line naming the image and what the hosts hold.
#[test]
fn a_job_for_an_image_no_host_holds_or_may_pull_is_refused_at_qsub() {
    require_cell!();
    wait_until_no_host_pulls();
    let case = Case::new("sched-refused");
    case.script("never.sh", "echo must-not-run\n");
    let absent = format!("qdock/absent-sched-e2e-{}:404", std::process::id());
    let said = case.qsub_refused(&absent, &["never.sh"]);
    let line = refusal_line(&said, &absent);
    assert!(line.contains(&format!("{}: ", this_host())), "{line}");
    assert!(line.contains(IMAGE), "{line}");
    case.assert_clean();
}

/// An image only this machine's engine holds (the other hosts have engines of their own):
/// the JSV lets the job in, and it runs here.
#[test]
fn a_job_for_an_image_one_host_holds_is_accepted() {
    require_cell!();
    wait_until_no_host_pulls();
    let host = this_host();
    let (name, tag) = tag_advertised_here("-one");
    let case = Case::new("sched-one");
    case.script("marker.sh", "cat /qdock-image-marker\n");
    let job = case.qsub_image(&name, &["marker.sh"]);
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    assert_eq!(acct[0].get("hostname"), host, "{acct:?}");
    case.assert_clean();
    drop(tag);
}

/// With `image_unavailable = "warn"` the admin lets such a job in: it waits in `qw`, and
/// `qstat -j` gives the scheduler's reason, as before the JSV looked.
#[test]
fn with_warn_a_job_for_an_image_present_nowhere_waits_with_the_reason() {
    require_cell!();
    assert_eq!(
        pull_policy(),
        "never",
        "this test needs images.pull = \"never\" in {SYSTEM_CONFIG}, as the example has"
    );
    wait_until_no_host_pulls();
    // Exclusive: the other tests here expect the refusal.
    let case = Case::exclusive("sched-nowhere");
    let _warn = set_config_value(
        std::path::Path::new(SYSTEM_CONFIG),
        "scheduling",
        "image_unavailable",
        "\"warn\"",
    );
    case.script("never.sh", "echo must-not-run\n");
    let absent = "qdock/absent-sched-e2e:404";
    let job = case.qsub_image(absent, &["never.sh"]);
    let shown = case.wait_for_reason(job, "qdock_images");
    assert!(shown.contains(&image_request(absent)), "{shown}");
    assert_eq!(case.states(job), ["qw"], "{shown}");
    assert!(case.acct(job).is_empty());
    case.delete(job);
    case.assert_clean();
}
