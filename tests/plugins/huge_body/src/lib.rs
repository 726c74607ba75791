//! Produces a valid JSON body of `{"bytes": N}` bytes (default 8 MiB).
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
struct S;
impl Guest for S {
    fn handle(_: Event, mut request: Request, config: String) -> Result<Verdict, String> {
        let n = serde_json::from_str::<serde_json::Value>(&config)
            .ok()
            .and_then(|c| c["bytes"].as_u64())
            .unwrap_or(8 << 20) as usize;
        request.body = format!("\"{}\"", "x".repeat(n.saturating_sub(2)));
        Ok(Verdict::Deliver(request))
    }
}
export!(S);
