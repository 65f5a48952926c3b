use std::process::ExitCode;

fn main() -> ExitCode {
    qdock::timing::start();
    qdock::report::init("qdock-starter");
    ExitCode::from(qdock::methods::starter::run(
        std::env::args_os().skip(1).collect(),
    ))
}
