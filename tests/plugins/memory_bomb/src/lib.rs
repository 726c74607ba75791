//! `memory_bomb`: allocates 1 MiB chunks, writing to every page of each, and
//! keeps them all until an allocation fails. A failed allocation aborts,
//! which is a trap; weir should report the call as over `memory_mb`.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

const CHUNK: usize = 1 << 20;
const PAGE: usize = 64 << 10;

struct MemoryBomb;

impl Guest for MemoryBomb {
    fn handle(_event: Event, _request: Request, _config: String) -> Result<Verdict, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            for i in (0..CHUNK).step_by(PAGE) {
                chunk[i] = 1;
            }
            hoard.push(std::hint::black_box(chunk));
        }
    }
}

export!(MemoryBomb);
