//! `qdock load-sensor`: a Grid Engine load sensor reporting whether this host's engine answers
//! (`qdock_engine`), how many qdock containers run on it (`qdock_containers`) and which images
//! it holds (`qdock_images`, see [`crate::advertise`]). With the complexes from
//! sge-conf/qdock-complexes.conf, jobs ask for `-l qdock_engine=1` and
//! `-l 'qdock_images=*;fastqc:0.11.9;*'` (`qdock jsv` adds both), and the scheduler sends
//! them only where the engine answers and the image is, or can come: a host whose config
//! pulls missing images advertises [`advertise::PULL_MARK`] too. The config is read again for
//! every report, so an admin's change counts from the next one, without restarting the execd.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::advertise::{self, Advert};
use crate::config::{Config, PullPolicy};
use crate::engine::{Engine, State};
use crate::report;

/// How long one report may take. The execd (8.1.9, `DEMAND_LS` on by default) asks just
/// before it sends its load report and waits at most a second per line
/// (sge_load_sensor.c, `read_ls()`); a later answer is read as the next report, one interval
/// stale. An engine slower than this counts as down: jobs could not start there either.
const DEADLINE: Duration = Duration::from_millis(800);

/// What the engine said, or that it did not answer in time.
#[derive(Debug, Default)]
struct Measure {
    up: bool,
    running: usize,
    references: Vec<String>,
}

/// Serves reports with the config at `path` (`config` as loaded from it at start).
pub fn serve(mut config: Config, path: PathBuf) -> std::io::Result<()> {
    let host = report_host();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut dropped_before = Vec::new();
    let mut config_error = None;
    let stdin = std::io::stdin();
    // execd writes a line whenever it wants a report, and "quit" when the sensor must end.
    for line in stdin.lock().lines() {
        if line?.trim() == "quit" {
            break;
        }
        if let Some(problem) = config.reload(&path, &mut config_error) {
            report::log(&format!(
                "load sensor: keeps reporting with the config read before: {problem}"
            ));
        }
        let measure = runtime
            .block_on(async { tokio::time::timeout(DEADLINE, measure(&config)).await })
            .unwrap_or_default();
        let advert = advertise::advertise(
            &measure.references,
            &config.scheduling.advertise,
            config.images.pull != PullPolicy::Never,
        );
        // Once per change, not every report: the admin learns what to reorder or drop.
        if advert.dropped != dropped_before {
            if !advert.dropped.is_empty() {
                report::log(&format!(
                    "load sensor: qdock_images holds at most {} bytes; left out {} image(s) ranked after the rest by [scheduling] advertise: {}",
                    advertise::MAX_VALUE,
                    advert.dropped.len(),
                    advert.dropped.join(" ")
                ));
            }
            dropped_before = advert.dropped.clone();
        }
        let mut out = std::io::stdout().lock();
        out.write_all(report(&host, &measure, &advert).as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

/// One report in the load sensor protocol (`sge_execd(8)`).
fn report(host: &str, m: &Measure, advert: &Advert) -> String {
    format!(
        "begin\n{host}:qdock_engine:{}\n{host}:qdock_containers:{}\n{host}:qdock_images:{}\nend\n",
        u8::from(m.up),
        m.running,
        advert.value
    )
}

/// The name the execd knows this host by: it passes it as `HOST`; a line naming another host
/// would set that host's values. The hostname when `HOST` is absent or could break the line.
fn report_host() -> String {
    std::env::var("HOST")
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        })
        .unwrap_or_else(|| {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

async fn measure(config: &Config) -> Measure {
    // The group only while the engine is asked (see `qdock ps`).
    let reached = crate::privilege::with_key(async {
        let engine = Engine::connect(&config.engine).await?;
        let (containers, images) = tokio::join!(engine.list_qdock(), engine.image_references());
        Ok((containers?, images?))
    })
    .await;
    match reached {
        Ok((list, images)) => Measure {
            up: true,
            running: list
                .iter()
                .filter(|c| matches!(c.state, State::Running | State::Paused))
                .count(),
            references: images.tags.into_iter().chain(images.digests).collect(),
        },
        Err(_) => Measure::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_four_lines_between_begin_and_end() {
        let m = Measure {
            up: true,
            running: 2,
            references: vec!["qdock/busybox:1".into()],
        };
        let advert = advertise::advertise(
            &m.references,
            &Config::default().scheduling.advertise,
            false,
        );
        assert_eq!(
            report("vm", &m, &advert),
            "begin\nvm:qdock_engine:1\nvm:qdock_containers:2\nvm:qdock_images:;qdock/busybox:1;\nend\n"
        );
        let down = Measure::default();
        let none = advertise::advertise(&down.references, &[], false);
        assert_eq!(
            report("node1", &down, &none),
            "begin\nnode1:qdock_engine:0\nnode1:qdock_containers:0\nnode1:qdock_images:;\nend\n"
        );
    }
}
