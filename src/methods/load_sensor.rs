//! `qdock load-sensor`: a Grid Engine load sensor reporting whether this host's engine answers
//! (`qdock_engine`) and how many qdock containers run on it (`qdock_containers`). With the
//! complexes from sge-conf/qdock-complexes.conf, jobs can ask for `-l qdock_engine=1` and
//! are never sent to a host whose engine is down.

use std::io::{BufRead, Write};

use crate::config::Config;
use crate::engine::{Engine, State};

pub fn serve(config: &Config) -> std::io::Result<()> {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stdin = std::io::stdin();
    // execd writes a line whenever it wants a report, and "quit" when the sensor must end.
    for line in stdin.lock().lines() {
        if line?.trim() == "quit" {
            break;
        }
        let (up, running) = runtime.block_on(measure(config));
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "begin\n{host}:qdock_engine:{}\n{host}:qdock_containers:{running}\nend",
            u8::from(up)
        )?;
        out.flush()?;
    }
    Ok(())
}

async fn measure(config: &Config) -> (bool, usize) {
    let Ok(engine) = Engine::connect(&config.engine).await else {
        return (false, 0);
    };
    match engine.list_qdock().await {
        Ok(list) => (
            true,
            list.iter()
                .filter(|c| matches!(c.state, State::Running | State::Paused))
                .count(),
        ),
        Err(_) => (false, 0),
    }
}
