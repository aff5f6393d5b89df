//! How a command fails: a message for stderr and the exit code.

use std::fmt;
use std::process::ExitCode;

/// A command that did not succeed. Exit codes: 1 for an error, 2 for a usage problem.
#[derive(Debug)]
pub struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    /// An error (exit code 1): the store, the run or the file is not what the command needs.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: false,
        }
    }

    /// A usage problem (exit code 2): the command line asks for something it cannot do as
    /// written.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: true,
        }
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(if self.usage { 2 } else { 1 })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<cano::CanoError> for Failure {
    fn from(e: cano::CanoError) -> Self {
        Self::error(e.to_string())
    }
}
