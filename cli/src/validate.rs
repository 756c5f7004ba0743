//! `autopilot config validate <file>`.

use crate::args::ValidateArgs;
use crate::config_file;
use crate::error::CliError;

/// Validates the file; on success prints how much it configures.
pub fn run(args: &ValidateArgs) -> Result<(), CliError> {
    let config = config_file::load(&args.file, &args.patterns)?;
    println!(
        "ok: {} project entries, {} repositories",
        config.projects.len(),
        config.repositories.len()
    );
    Ok(())
}
