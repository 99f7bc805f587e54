//! SCRAM-SHA-256 and SCRAM-SHA-512 clients (RFC 5802, RFC 7677), as Kafka's Java `ScramSaslClient`
//! runs them: no channel binding (`n,,`), no authzid, the password used as UTF-8 without SASLprep,
//! and at least 4096 iterations.
//!
//! Owns [`ScramClient`]. Uses RustCrypto for HMAC/PBKDF2/SHA-2 and `getrandom` for the nonce.
//!
//! # Invariants
//!
//! - The steps run in order: `client_first`, `handle_server_first`, `handle_server_final`; anything
//!   else is [`Error::OutOfOrder`].
//! - Success requires the server signature to verify; the comparison is constant-time.
//! - The password is wiped once the salted password is derived, the salted password once the keys are
//!   derived, and neither is ever printed.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use zeroize::Zeroize;

use super::{Error, Mechanism, Password, Step};

/// Kafka's minimum SCRAM iteration count (`ScramMechanism.minIterations`).
const MIN_ITERATIONS: u32 = 4096;
/// The most iterations this client will compute; a guard against a server making it spin.
const MAX_ITERATIONS: u32 = 1_000_000;
/// `base64("n,,")`: the GS2 header of a client without channel binding.
const GS2_HEADER_B64: &str = "biws";

enum State {
    /// Nothing sent yet.
    Initial,
    /// Client-first sent; waiting for server-first.
    ClientFirstSent,
    /// Client-final sent; waiting for server-final, which must carry this signature.
    ClientFinalSent { server_signature: Vec<u8> },
    /// Authenticated.
    Done,
    /// A step failed; the exchange cannot continue.
    Failed,
}

/// An I/O-free SCRAM client for one authentication exchange.
pub(crate) struct ScramClient {
    mechanism: Mechanism,
    username: String,
    password: Password,
    client_nonce: String,
    state: State,
}

impl ScramClient {
    /// A client with a fresh random nonce. `mechanism` must be a SCRAM mechanism; PLAIN is treated
    /// as SCRAM-SHA-512 would be, so callers pass only SCRAM ones.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random source fails.
    pub(crate) fn new(mechanism: Mechanism, username: &str, password: &str) -> Result<Self, Error> {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| Error::Random {
            message: e.to_string(),
        })?;
        Ok(Self::with_nonce(
            mechanism,
            username,
            password,
            &URL_SAFE_NO_PAD.encode(raw),
        ))
    }

    /// A client with a given nonce (test vectors).
    pub(crate) fn with_nonce(mechanism: Mechanism, username: &str, password: &str, nonce: &str) -> Self {
        Self {
            mechanism,
            username: username.to_owned(),
            password: Password::new(password.to_owned()),
            client_nonce: nonce.to_owned(),
            state: State::Initial,
        }
    }

    /// The mechanism.
    pub(crate) fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    fn first_bare(&self) -> String {
        format!("n={},r={}", saslname(&self.username), self.client_nonce)
    }

    /// The client-first message `n,,n=<user>,r=<nonce>`. Calling it again restarts the exchange.
    pub(crate) fn client_first(&mut self) -> Vec<u8> {
        self.state = State::ClientFirstSent;
        format!("n,,{}", self.first_bare()).into_bytes()
    }

    /// Handles server-first and returns client-final (with the proof).
    ///
    /// # Errors
    ///
    /// [`Error::AuthenticationFailed`] for `e=`, [`Error::MalformedServerMessage`],
    /// [`Error::NonceMismatch`], [`Error::IterationCount`], [`Error::OutOfOrder`].
    pub(crate) fn handle_server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        if !matches!(self.state, State::ClientFirstSent) {
            return Err(Error::OutOfOrder {
                expected: "client_first before server-first",
            });
        }
        self.state = State::Failed;
        let text = utf8(message)?;
        let attrs = attributes(text)?;
        if let Some(message) = find(&attrs, 'e') {
            return Err(Error::AuthenticationFailed {
                message: message.to_owned(),
            });
        }
        if attrs.first().is_some_and(|(k, _)| *k == 'm') {
            return Err(malformed("server requires an unsupported extension (m=)"));
        }
        let nonce = find(&attrs, 'r').ok_or_else(|| malformed("server-first has no nonce (r=)"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err(Error::NonceMismatch);
        }
        if nonce.bytes().any(|b| !(0x21..=0x7e).contains(&b) || b == b',') {
            return Err(malformed("server nonce has non-printable characters"));
        }
        let salt = find(&attrs, 's').ok_or_else(|| malformed("server-first has no salt (s=)"))?;
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| malformed("salt is not base64"))?;
        if salt.is_empty() {
            return Err(malformed("salt is empty"));
        }
        let iterations =
            find(&attrs, 'i').ok_or_else(|| malformed("server-first has no iteration count (i=)"))?;
        let iterations: u64 = iterations
            .parse()
            .map_err(|_| malformed("iteration count is not a number"))?;
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
            .ok_or(Error::IterationCount {
                iterations,
                min: MIN_ITERATIONS,
                max: MAX_ITERATIONS,
            })?;

        let final_without_proof = format!("c={GS2_HEADER_B64},r={nonce}");
        let auth_message = format!("{},{},{}", self.first_bare(), text, final_without_proof);
        let keys = Keys::derive(
            self.mechanism,
            self.password.as_str().as_bytes(),
            &salt,
            iterations,
            auth_message.as_bytes(),
        );
        // The password is no longer needed.
        self.password.zeroize();
        self.state = State::ClientFinalSent {
            server_signature: keys.server_signature,
        };
        Ok(format!("{final_without_proof},p={}", STANDARD.encode(keys.client_proof)).into_bytes())
    }

    /// Handles server-final: `v=<signature>` must verify, `e=<reason>` is a failed authentication.
    ///
    /// # Errors
    ///
    /// [`Error::AuthenticationFailed`], [`Error::ServerSignatureMismatch`],
    /// [`Error::MalformedServerMessage`], [`Error::OutOfOrder`].
    pub(crate) fn handle_server_final(&mut self, message: &[u8]) -> Result<(), Error> {
        let State::ClientFinalSent { server_signature } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(Error::OutOfOrder {
                expected: "server-first before server-final",
            });
        };
        let attrs = attributes(utf8(message)?)?;
        if let Some(message) = find(&attrs, 'e') {
            return Err(Error::AuthenticationFailed {
                message: message.to_owned(),
            });
        }
        let verifier = find(&attrs, 'v').ok_or_else(|| malformed("server-final has neither v= nor e="))?;
        let verifier = STANDARD
            .decode(verifier)
            .map_err(|_| malformed("server signature is not base64"))?;
        if !constant_time_eq(&verifier, &server_signature) {
            return Err(Error::ServerSignatureMismatch);
        }
        self.state = State::Done;
        Ok(())
    }

    /// The generic step: server-first, then server-final.
    pub(crate) fn handle(&mut self, message: &[u8]) -> Result<Step, Error> {
        match self.state {
            State::ClientFirstSent => self.handle_server_first(message).map(Step::Respond),
            State::ClientFinalSent { .. } => self.handle_server_final(message).map(|()| Step::Done),
            State::Initial => Err(Error::OutOfOrder {
                expected: "client_first",
            }),
            State::Done | State::Failed => Err(Error::OutOfOrder {
                expected: "no more server messages",
            }),
        }
    }

    /// Whether the exchange succeeded.
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Initial => "initial",
            State::ClientFirstSent => "client-first sent",
            State::ClientFinalSent { .. } => "client-final sent",
            State::Done => "done",
            State::Failed => "failed",
        };
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("state", &state)
            .finish()
    }
}

/// The proof and the expected server signature of one exchange.
struct Keys {
    client_proof: Vec<u8>,
    server_signature: Vec<u8>,
}

impl Keys {
    fn derive(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32, auth: &[u8]) -> Self {
        match mechanism {
            Mechanism::ScramSha256 => Self::derive_with::<Sha256>(password, salt, iterations, auth),
            Mechanism::ScramSha512 | Mechanism::Plain => {
                Self::derive_with::<Sha512>(password, salt, iterations, auth)
            }
        }
    }

    fn derive_with<D>(password: &[u8], salt: &[u8], iterations: u32, auth: &[u8]) -> Self
    where
        D: Digest + hmac::EagerHash,
        Hmac<D>: KeyInit + Mac,
    {
        let mut salted = vec![0u8; <D as Digest>::output_size()];
        pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut salted);
        let client_key = hmac_of::<D>(&salted, b"Client Key");
        let stored_key = D::digest(&client_key).to_vec();
        let client_signature = hmac_of::<D>(&stored_key, auth);
        let client_proof = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac_of::<D>(&salted, b"Server Key");
        let server_signature = hmac_of::<D>(&server_key, auth);
        // The salted password is as good as the password for this salt: wipe it.
        salted.zeroize();
        Self {
            client_proof,
            server_signature,
        }
    }
}

fn hmac_of<D>(key: &[u8], data: &[u8]) -> Vec<u8>
where
    D: Digest + hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    // HMAC takes keys of any length, so this cannot fail; an empty MAC would fail verification.
    match <Hmac<D> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// RFC 5802 `saslname`: `=` becomes `=3D` and `,` becomes `=2C`.
fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn utf8(message: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(message).map_err(|_| malformed("server message is not UTF-8"))
}

fn malformed(reason: &str) -> Error {
    Error::MalformedServerMessage {
        reason: reason.to_owned(),
    }
}

/// `k=value` pairs separated by commas; keys are single ASCII letters.
fn attributes(text: &str) -> Result<Vec<(char, &str)>, Error> {
    text.split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &part[2..])),
                _ => Err(malformed("expected comma-separated k=value attributes")),
            }
        })
        .collect()
}

fn find<'a>(attrs: &[(char, &'a str)], key: char) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
