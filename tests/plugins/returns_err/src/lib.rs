//! Fails politely.
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
struct S;
impl Guest for S {
    fn handle(_: Event, _: Request, _: String) -> Result<Verdict, String> {
        Err("refusing on purpose".into())
    }
}
export!(S);
