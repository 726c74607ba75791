//! Never returns: weir's deadline must stop it.
wit_bindgen::generate!({ path: "../../../wit", world: "filter" });
struct S;
impl Guest for S {
    fn handle(_: Event, _: Request, _: String) -> Result<Verdict, String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}
export!(S);
