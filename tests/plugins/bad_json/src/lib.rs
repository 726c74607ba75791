//! Reshapes the body into something that is not JSON.
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
struct S;
impl Guest for S {
    fn handle(_: Event, mut request: Request, _: String) -> Result<Verdict, String> {
        request.body = "{not json".into();
        Ok(Verdict::Deliver(request))
    }
}
export!(S);
