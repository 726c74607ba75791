//! Allocates and touches memory until the host's limit stops it.
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
struct S;
impl Guest for S {
    fn handle(_: Event, _: Request, _: String) -> Result<Verdict, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 4 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}
export!(S);
