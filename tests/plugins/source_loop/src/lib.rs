//! `source_loop`: a source plugin that never returns, so only weir's
//! `timeout_ms` deadline ends the call.

wit_bindgen::generate!({ path: "../../../wit", world: "source" });

struct SourceLoop;

impl Guest for SourceLoop {
    fn map_request(_request: Incoming, _config: String) -> Result<Vec<EventDraft>, String> {
        let mut n = 0u64;
        loop {
            // Opaque to the optimiser, so the loop stays real work.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export!(SourceLoop);
