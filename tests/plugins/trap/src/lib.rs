//! Panics, which traps the instance.
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
struct S;
impl Guest for S {
    fn handle(event: Event, _: Request, _: String) -> Result<Verdict, String> {
        panic!("boom on {}", event.id)
    }
}
export!(S);
