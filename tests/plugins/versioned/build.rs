//! The version is baked in at compile time; rebuild when it changes.

fn main() {
    println!("cargo:rerun-if-env-changed=WEIR_TEST_PLUGIN_VERSION");
}
