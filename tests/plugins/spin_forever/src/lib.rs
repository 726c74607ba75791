//! `spin_forever`: never returns. `handle` spins in a loop the optimiser
//! cannot remove, so only weir's `timeout_ms` deadline ends the call.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

struct SpinForever;

impl Guest for SpinForever {
    fn handle(_event: Event, _request: Request, _config: String) -> Result<Verdict, String> {
        let mut n = 0u64;
        loop {
            // `black_box` hides the counter from the optimiser, so the loop
            // stays a real loop of real work.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export!(SpinForever);
