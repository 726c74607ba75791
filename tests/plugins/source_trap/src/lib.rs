//! `source_trap`: a source plugin that panics on every call with
//! `boom on <path>`; the panic aborts with `unreachable`, so the call traps.

wit_bindgen::generate!({ path: "../../../wit", world: "source" });

struct SourceTrap;

impl Guest for SourceTrap {
    fn map_request(request: Incoming, _config: String) -> Result<Vec<EventDraft>, String> {
        panic!("boom on {}", request.path)
    }
}

export!(SourceTrap);
