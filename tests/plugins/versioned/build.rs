fn main() {
    println!("cargo:rerun-if-env-changed=WEIR_TEST_PLUGIN_VERSION");
}
