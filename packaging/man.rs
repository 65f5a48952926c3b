//! Writes the manual pages of the installed binaries into the directory it is given, from
//! the clap definitions the binaries parse their command lines with: `qdock.1` and one page
//! per subcommand (`qdock-gc.1`, …), `qdock-suspend.8`, `qdock-resume.8`,
//! `qdock-terminate.8`, and `qdock-starter.8`. bin/package runs it
//! (`cargo run --example man -- DIR`); it is no part of what gets installed.
//!
//! The starter alone has no parser: its argv is the job's script and arguments, passed on
//! untouched (an option there belongs to the job), so its page is described here.

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command, CommandFactory};
use clap_mangen::Man;
use qdock::methods::admin::Cli;
use qdock::methods::control::{self, Action};

fn starter() -> Command {
    Command::new("qdock-starter")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Grid Engine's starter_method: run the job in the image its IMAGE names, or natively",
        )
        .long_about(
            "Grid Engine's starter_method. Runs the job in the Docker image named by the \
             job's IMAGE variable, as the submitting user, and exits with the job's exit code; \
             a job without IMAGE is executed natively, as Grid Engine's builtin starter would. \
             Exit 99 when the job could not start for a reason that may pass (Grid Engine \
             requeues it), 100 when it can never run as submitted (the job goes to Eqw). \
             Configuration: /etc/qdock/qdock.toml. Options are none: every argument is the \
             job's.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("script")
                .value_name("SCRIPT")
                .required(true)
                .help("The job's script (or command, for a binary job), as the shepherd gives it"),
        )
        .arg(
            Arg::new("args")
                .value_name("ARG")
                .action(ArgAction::Append)
                .help("The job's arguments, passed on unchanged"),
        )
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args_os().nth(1).expect("usage: man DIR"));
    std::fs::create_dir_all(&dir)?;
    // Users run `qdock usage` and `qdock ps` too: section 1. The methods are Grid Engine's
    // to run, as its own sge_shepherd(8): section 8.
    clap_mangen::generate_to(Cli::command(), &dir)?;
    let methods = [Action::Suspend, Action::Resume, Action::Terminate].map(control::command);
    for command in std::iter::once(starter()).chain(methods) {
        Man::new(command).section("8").generate_to(&dir)?;
    }
    Ok(())
}
