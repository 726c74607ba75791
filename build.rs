//! Builds the guest plugins with `cargo build --target wasm32-wasip2`, once
//! per change of their sources, so `cargo run` and `cargo test` always have
//! them: the example plugins land in `plugins/<name>.wasm` (where the example
//! `config.toml` finds them), the test plugins in `$OUT_DIR/test-plugins/`.
//!
//! Each workspace builds into its own target dir, so the nested cargo never
//! waits on the outer one's lock.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=wit");
    println!("cargo:rerun-if-env-changed=WEIR_SKIP_PLUGIN_BUILD");
    if std::env::var_os("WEIR_SKIP_PLUGIN_BUILD").is_some() {
        println!(
            "cargo:rustc-env=WEIR_TEST_PLUGINS={}",
            out.join("test-plugins").display()
        );
        return;
    }

    let examples = root.join("plugins");
    for name in build_workspace(&examples, &examples.join("target"), &[]) {
        copy(
            &examples.join("target"),
            &name,
            &examples.join(format!("{name}.wasm")),
        );
    }

    let tests = root.join("tests/plugins");
    let dest = out.join("test-plugins");
    std::fs::create_dir_all(&dest).unwrap();
    for name in build_workspace(&tests, &tests.join("target"), &[]) {
        copy(
            &tests.join("target"),
            &name,
            &dest.join(format!("{name}.wasm")),
        );
    }
    // The `versioned` plugin again, with other versions baked in, for reload tests.
    for version in ["2", "3"] {
        let target = tests.join(format!("target/v{version}"));
        build_package(
            &tests,
            &target,
            "versioned",
            &[("WEIR_TEST_PLUGIN_VERSION", version)],
        );
        copy(
            &target,
            "versioned",
            &dest.join(format!("versioned_v{version}.wasm")),
        );
    }
    println!("cargo:rustc-env=WEIR_TEST_PLUGINS={}", dest.display());
}

/// Builds every member of the workspace at `dir`; returns the members' names.
fn build_workspace(dir: &Path, target: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let members = members(dir);
    for m in &members {
        println!(
            "cargo:rerun-if-changed={}",
            dir.join(m).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            dir.join(m).join("Cargo.toml").display()
        );
        let build_rs = dir.join(m).join("build.rs");
        if build_rs.exists() {
            println!("cargo:rerun-if-changed={}", build_rs.display());
        }
    }
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("Cargo.toml").display()
    );
    run_cargo(dir, target, &["--workspace"], env);
    members
}

fn build_package(dir: &Path, target: &Path, package: &str, env: &[(&str, &str)]) {
    run_cargo(dir, target, &["-p", package], env);
}

fn run_cargo(dir: &Path, target: &Path, args: &[&str], env: &[(&str, &str)]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target)
        .args(args);
    // Settings meant for the host build must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        // `cargo clippy` lints through these; guests are not linted with
        // the host's `-D warnings` (bindings generated for them would fail).
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("cannot run cargo to build plugins");
    if !status.success() {
        panic!(
            "building the plugins in {} failed; is the target installed? run `rustup target add wasm32-wasip2`",
            dir.display()
        );
    }
}

fn copy(target: &Path, name: &str, dest: &Path) {
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    let tmp = dest.with_extension("wasm.tmp");
    // Write then rename, so a running weir watching plugins/ sees one change.
    let bytes = std::fs::read(&built).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    if std::fs::read(dest).ok().as_deref() == Some(&bytes[..]) {
        return;
    }
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// Members of a workspace: the directories beside its Cargo.toml that hold one.
fn members(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "target" && n != "examples")
        .collect();
    names.sort();
    names
}
