//! `trap`: panics on every call with `boom on <event id>`. On wasm32-wasip2
//! a panic prints its message to stderr and aborts with `unreachable`, so the
//! call traps and weir can quote the message.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

struct Trap;

impl Guest for Trap {
    fn handle(event: Event, _request: Request, _config: String) -> Result<Verdict, String> {
        panic!("boom on {}", event.id)
    }
}

export!(Trap);
