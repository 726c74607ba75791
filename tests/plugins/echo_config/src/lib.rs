//! Delivers its config as the body, so tests can see what config arrives.
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
struct S;
impl Guest for S {
    fn handle(_: Event, mut request: Request, config: String) -> Result<Verdict, String> {
        request.body = config;
        request.headers.push(("x-plugin".into(), "echo_config".into()));
        Ok(Verdict::Deliver(request))
    }
}
export!(S);
