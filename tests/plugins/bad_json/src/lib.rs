//! `bad_json`: delivers the body `{not json` (keeping the request's headers),
//! which weir must refuse as invalid output rather than send.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

struct BadJson;

impl Guest for BadJson {
    fn handle(_event: Event, request: Request, _config: String) -> Result<Verdict, String> {
        Ok(Verdict::Deliver(Request { body: "{not json".into(), headers: request.headers }))
    }
}

export!(BadJson);
