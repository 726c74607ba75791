//! `busy`: works for `ms` milliseconds (config `{"ms": 20}`; 5 without), then
//! delivers the request unchanged. Longer than weir lets a call hold an
//! async worker, shorter than its deadline: such a call must still deliver.

use std::time::{Duration, Instant};

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

struct Busy;

impl Guest for Busy {
    fn handle(_event: Event, request: Request, config: String) -> Result<Verdict, String> {
        // `{"ms":20}`: the digits after the key, without a JSON parser.
        let ms: u64 = config
            .split_once("\"ms\":")
            .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect::<String>())
            .and_then(|n| n.parse().ok())
            .unwrap_or(5);
        let until = Instant::now() + Duration::from_millis(ms);
        let mut n = 0u64;
        while Instant::now() < until {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        Ok(Verdict::Deliver(request))
    }
}

export!(Busy);
