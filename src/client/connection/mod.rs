//! One broker connection: transport, SASL authentication and the request messenger.
//!
//! This module owns what a single connection needs; the SASL mechanisms live in `sasl` as I/O-free
//! state machines that the connection drives with SaslHandshake/SaslAuthenticate requests.

#[allow(
    dead_code,
    reason = "driven by the connection layer, which is built separately"
)]
pub(crate) mod sasl;
