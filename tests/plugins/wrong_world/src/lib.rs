//! `wrong_world`: a well-formed component of another world
//! (`other:thing@0.1.0`, exporting only `run`). weir must report it as a
//! plugin that failed to load, not crash or call it.

wit_bindgen::generate!({ path: "wit", world: "other" });

struct WrongWorld;

impl Guest for WrongWorld {
    fn run() -> String {
        "not a weir plugin".into()
    }
}

export!(WrongWorld);
