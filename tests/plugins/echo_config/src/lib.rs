//! `echo_config`: delivers its config text verbatim as the body, with the
//! header `x-plugin: echo_config` added, so tests can see exactly what
//! config weir handed over.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

struct EchoConfig;

impl Guest for EchoConfig {
    fn handle(_event: Event, mut request: Request, config: String) -> Result<Verdict, String> {
        request.headers.push(("x-plugin".into(), "echo_config".into()));
        Ok(Verdict::Deliver(Request { body: config, headers: request.headers }))
    }
}

export!(EchoConfig);
