//! A valid component that exports some other world.
wit_bindgen::generate!({ path: "wit", world: "other" });
struct S;
impl Guest for S {
    fn run() -> String {
        "not a filter".into()
    }
}
export!(S);
