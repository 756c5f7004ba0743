//! `autopilot`: the command line for operators and CI. Parses the arguments, runs one command,
//! and turns its outcome into an exit code; the commands live in their own modules.

mod args;
mod config_file;
mod decide;
mod error;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, ConfigCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Config {
            command: ConfigCommand::Validate(args),
        } => validate::run(&args),
        Command::Decide(args) => decide::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(err.exit_code())
        }
    }
}
