//! `source_garbage`: a source plugin whose second event is bad. Event 0 is
//! fine (`ok.event`, data `{}`); event 1's data is `{not json`, so weir must
//! refuse the whole answer and name event 1.

wit_bindgen::generate!({ path: "../../../wit", world: "source" });

struct SourceGarbage;

impl Guest for SourceGarbage {
    fn map_request(_request: Incoming, _config: String) -> Result<Vec<EventDraft>, String> {
        let event = |data: &str| EventDraft {
            id: None,
            event_type: "ok.event".into(),
            owner_id: None,
            data: data.into(),
            occurred_at: None,
        };
        Ok(vec![event("{}"), event("{not json")])
    }
}

export!(SourceGarbage);
