//! Tags each delivery with the version it was built as
//! (`WEIR_TEST_PLUGIN_VERSION`, default 1), and drops events whose
//! `data.drop_if_version` names that version: reload tests tell from the
//! outcome which version handled an event.
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
const VERSION: &str = match option_env!("WEIR_TEST_PLUGIN_VERSION") {
    Some(v) => v,
    None => "1",
};
struct S;
impl Guest for S {
    fn handle(event: Event, mut request: Request, _: String) -> Result<Verdict, String> {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
        if data["drop_if_version"].as_str() == Some(VERSION) {
            return Ok(Verdict::Drop(format!("version {VERSION} drops")));
        }
        request.headers.push(("x-plugin-version".into(), VERSION.into()));
        Ok(Verdict::Deliver(request))
    }
}
export!(S);
