//! `old_major`: the `filter` world of another major version of the contract,
//! `weir:plugin@1.0.0` (a copy of `wit/` with only the version changed, in
//! `wit/` beside this file). Otherwise it behaves like a well-behaved plugin
//! that delivers the request unchanged; weir must refuse to load it, because
//! a different major version is a different contract.

wit_bindgen::generate!({ path: "wit", world: "filter" });

struct OldMajor;

impl Guest for OldMajor {
    fn handle(_event: Event, request: Request, _config: String) -> Result<Verdict, String> {
        Ok(Verdict::Deliver(request))
    }
}

export!(OldMajor);
