//! Exit codes by name (sysexits.h), and clap's errors mapped onto them.

use std::process::ExitCode;

/// Process exit status of every SAIR binary (the values of BSD `sysexits.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A bad flag, variable or config file (`EX_USAGE`).
    Usage = 64,
    /// Input data was wrong (`EX_DATAERR`).
    DataErr = 65,
    /// An input file does not exist or cannot be read (`EX_NOINPUT`).
    NoInput = 66,
    /// A dependency (a service, a library, a device) is unavailable (`EX_UNAVAILABLE`).
    Unavailable = 69,
    /// An internal error: a bug or an unexpected state (`EX_SOFTWARE`).
    Internal = 70,
    /// An output file cannot be created (`EX_CANTCREAT`).
    CantCreate = 73,
    /// An I/O error (`EX_IOERR`).
    IoErr = 74,
}

impl Exit {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// The exit code for a clap error: 0 for `--help` / `--version`, 64 for every parse error
/// (clap's own default is 2). Prints the error, help or version first.
pub fn clap_error(e: &clap::Error) -> ExitCode {
    if let Err(io) = e.print() {
        eprintln!("cannot print the usage message: {io}");
    }
    clap_exit(e).into()
}

/// [`clap_error`] without printing.
pub fn clap_exit(e: &clap::Error) -> Exit {
    if e.use_stderr() {
        Exit::Usage
    } else {
        Exit::Ok
    }
}
