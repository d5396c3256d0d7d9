//! The `secmail` binary: parse, run, map the result to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match secmail::cli::main() {
        Ok(code) => code,
        Err(err) => {
            secmail::cli::report(&err);
            ExitCode::FAILURE
        }
    }
}
