//! Where things are in the workspace: the root, the built binaries, the Python environments.

use std::path::PathBuf;

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The directory cargo puts binaries in for the current profile (`target/debug` in tests).
/// `CARGO_BIN_EXE_*` only covers this crate's own binaries, so other members' binaries are
/// found here after `cargo build --workspace --bins` (the Makefile does that first).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("AUTOPILOT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    target.join("debug")
}

/// Path of a workspace binary by name, e.g. `binary("ops-api")`.
pub fn binary(name: &str) -> PathBuf {
    bin_dir().join(name)
}
