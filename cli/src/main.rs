//! `autopilot`: the command line for operators and CI. Parses the arguments, runs one command,
//! and turns its outcome into an exit code; the commands live in their own modules.

mod args;
mod batches;
mod builds;
mod config_file;
mod connect;
mod decide;
mod error;
mod keys;
mod output;
mod redrive;
mod validate;
mod views;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use args::{BatchesCommand, BuildsCommand, Cli, Command, ConfigCommand, DlqCommand};
use error::{CliError, EXIT_UNUSABLE_INPUT};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version: printed on stdout, exit 0.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `autopilot` alone, or `autopilot builds`: the help, as a usage error.
            let _ = err.print();
            return ExitCode::from(EXIT_UNUSABLE_INPUT);
        }
        Err(err) => {
            eprintln!("{}", one_line(&err.render().to_string()));
            return ExitCode::from(EXIT_UNUSABLE_INPUT);
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", err.message());
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Config {
            command: ConfigCommand::Validate(args),
        } => validate::run(&args),
        Command::Decide(args) => decide::run(&args),
        Command::Builds { command } => connect::block_on(async {
            match command {
                BuildsCommand::Get(args) => builds::get(&args).await,
                BuildsCommand::Retry(args) => builds::retry(&args).await,
            }
        })?,
        Command::Batches { command } => connect::block_on(async {
            match command {
                BatchesCommand::Start(args) => batches::start(&args).await,
                BatchesCommand::Stop(args) => batches::stop(&args).await,
                BatchesCommand::List(args) => batches::list(&args).await,
            }
        })?,
        Command::Dlq {
            command: DlqCommand::Redrive(args),
        } => connect::block_on(redrive::run(&args))?,
    }
}

/// clap's error text in one line: the message and its details (the missing argument, the
/// possible values), without the usage block that follows; CI logs show one line per failure.
fn one_line(rendered: &str) -> String {
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    format!("{} (see --help)", message.join(" "))
}
