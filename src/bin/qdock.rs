use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(qdock::methods::admin::main())
}
