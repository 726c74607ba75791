//! HTTP in, below the router: weir's own accept loop over hyper's HTTP/1.1
//! server, so that no client holds a connection for long or goes unanswered.
//!
//! At most `[server] max_connections` connections are served; past that a
//! new one gets `503` and is closed. A request head must arrive within
//! `header_read_timeout_secs` and its body within `body_read_timeout_secs` of
//! the head, or the request gets `408`. Every error answer has the API's JSON
//! shape, hyper's own included. Shutdown stops accepting and lets requests in
//! progress finish, for at most [`SHUTDOWN_GRACE`].

mod accept;
mod answer;
mod body;
mod wire;

pub use accept::{MAX_HEAD_BYTES, MAX_HEADERS, SHUTDOWN_GRACE, bind, serve};
