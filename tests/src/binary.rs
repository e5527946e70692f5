//! Locates workspace binaries and cdylibs built into the same target directory as the test.

use std::path::PathBuf;

/// The `<target>/<profile>` directory this test executable was built into.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable has a path");
    // <target>/<profile>/deps/<test-exe>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary or library file; panics with the build command if it is missing.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --all-targets` first (scripts/test.sh does)",
        path.display()
    );
    path
}
