//! `returns_err`: answers every call with `err("refusing on purpose")`, the
//! orderly kind of plugin failure.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

struct ReturnsErr;

impl Guest for ReturnsErr {
    fn handle(_event: Event, _request: Request, _config: String) -> Result<Verdict, String> {
        Err("refusing on purpose".into())
    }
}

export!(ReturnsErr);
