//! Runs a SASL exchange on a freshly handshaken connection: SaslHandshake v1, then SaslAuthenticate
//! (v0..=2) until the mechanism is done.
//!
//! Invariants:
//! - Every failure that is about the credentials or the broker's SASL settings becomes
//!   [`Error::Authentication`] (not retriable), naming the broker, the mechanism and the user, never the
//!   password. A request timeout or a failure before the first SaslAuthenticate keeps its own
//!   (retriable) connection error.
//! - SCRAM's key derivation (PBKDF2, thousands of HMAC rounds) runs on the blocking pool, not on the
//!   async workers.

use bytes::Bytes;
use kafka_protocol::{
    messages::{SaslAuthenticateRequest, SaslHandshakeRequest},
    protocol::StrBytes,
};
use tracing::debug;

use super::{Error as SaslError, Mechanism, SaslClient, SaslConfig, Step};
use crate::{
    client::connection::{Error, Messenger},
    protocol::ServerError,
};

/// The most SaslAuthenticate round trips one exchange may take (SCRAM needs 2, PLAIN 1).
const MAX_ROUNDS: usize = 4;

/// Authenticates the connection behind `messenger` with `config`'s mechanism and credentials.
///
/// # Errors
///
/// [`Error::Authentication`] when the broker refuses the mechanism or the credentials, closes the
/// connection mid-exchange, or fails SCRAM's server check; the messenger's own errors otherwise.
pub(crate) async fn authenticate(messenger: &Messenger, config: &SaslConfig) -> Result<(), Error> {
    let client = SaslClient::new(config.mechanism, &config.username, config.password())
        .map_err(|source| failure(messenger, config.mechanism, &config.username, source))?;
    run(messenger, client, &config.username).await
}

fn failure(messenger: &Messenger, mechanism: Mechanism, username: &str, source: SaslError) -> Error {
    Error::Authentication {
        broker: messenger.broker().to_owned(),
        mechanism,
        username: username.to_owned(),
        source,
    }
}

/// The exchange with a given client (tests pass one with a fixed nonce).
pub(super) async fn run(messenger: &Messenger, mut client: SaslClient, username: &str) -> Result<(), Error> {
    let mechanism = client.mechanism();
    let fail = |source| failure(messenger, mechanism, username, source);

    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let response = messenger.request(&handshake).await?;
    if response.error_code == UNSUPPORTED_SASL_MECHANISM {
        let enabled = response.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(fail(SaslError::MechanismNotEnabled { enabled }));
    }
    if let Some(error) = ServerError::from_code(response.error_code, None) {
        return Err(fail(SaslError::Rejected { error }));
    }

    let mut token = client.initial_response();
    for _ in 0..MAX_ROUNDS {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let response = match messenger.request(&request).await {
            Ok(response) => response,
            Err(Error::Disconnected { .. }) => return Err(fail(SaslError::ClosedDuringAuthentication)),
            Err(e) => return Err(e),
        };
        if let Some(error) = ServerError::from_code(response.error_code, response.error_message.as_deref()) {
            return Err(fail(SaslError::Rejected { error }));
        }
        let challenge = response.auth_bytes;
        // PBKDF2 may take milliseconds (or far more at a high iteration count): keep it off the workers.
        let (returned, step) = tokio::task::spawn_blocking(move || {
            let step = client.handle_challenge(&challenge);
            (client, step)
        })
        .await
        .map_err(|_| Error::Closed {
            broker: messenger.broker().to_owned(),
        })?;
        client = returned;
        match step.map_err(fail)? {
            Step::Done => {
                debug!(
                    broker = messenger.broker(),
                    %mechanism,
                    user = username,
                    session_lifetime_ms = response.session_lifetime_ms,
                    "authenticated"
                );
                return Ok(());
            }
            Step::Respond(next) => token = next,
        }
    }
    Err(fail(SaslError::TooManyRounds { rounds: MAX_ROUNDS }))
}

/// UNSUPPORTED_SASL_MECHANISM: the handshake response then lists what the broker enables.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

#[cfg(test)]
mod tests;
