use std::process::ExitCode;

use qdock::methods::control::{Action, main as method};

fn main() -> ExitCode {
    ExitCode::from(method(Action::Resume))
}
