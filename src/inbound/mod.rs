//! Inbound: webhooks that other services (GitHub, Stripe, Slack, …) send to weir.

pub mod verify;
