//! TLS for broker connections: rustls on a pure-Rust crypto provider, never ring or aws-lc unless the
//! application installs one.
//!
//! [`TlsConfig`] is built either from files (a CA bundle, and for mTLS a client certificate and key, all
//! PEM) or from a `rustls::ClientConfig` the user built with a provider of their choice. With no CA file
//! the system's trust store is used. The crypto provider is chosen at run time ([`TlsProvider`]): the
//! application's process-wide one, else graviola where the CPU has what it needs, else RustCrypto.

use std::{fmt, path::PathBuf, sync::Arc};

use rustls::{
    ClientConfig as RustlsConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use snafu::Snafu;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tracing::{debug, warn};

pub use provider::TlsProvider;

mod provider;

/// A TLS settings error: a file that cannot be read or parsed, or an inconsistent combination.
#[derive(Debug, Snafu)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read or holds nothing usable.
    #[snafu(display("cannot load {what} from {}: {message}", path.display()))]
    Pem {
        /// What was being loaded (CA bundle, certificate, key).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    #[snafu(display("invalid TLS settings: {source}"))]
    Rustls {
        /// rustls' error.
        source: rustls::Error,
    },
    /// No crypto provider can run here: none was built in (features `tls-graviola`, `tls-rustcrypto`),
    /// none was installed process-wide, or the CPU lacks what the built-in one needs.
    #[snafu(display("no usable TLS crypto provider ({reasons})"))]
    NoProvider {
        /// Why each provider was passed over.
        reasons: String,
    },
    /// The provider asked for with [`TlsConfigBuilder::provider`] cannot run here.
    #[snafu(display("the {provider} TLS crypto provider is unusable: {reason}"))]
    ProviderUnavailable {
        /// The provider asked for.
        provider: TlsProvider,
        /// Why it cannot run (not built in, a CPU without the instructions it needs...).
        reason: String,
    },
}

/// How to secure broker connections with TLS.
///
/// # Example
///
/// ```no_run
/// use kafka_event_bus::client::connection::TlsConfig;
///
/// // Server authentication against a private CA, plus a client certificate (mTLS).
/// let tls = TlsConfig::builder()
///     .ca_file("/etc/kafka/ca.pem")
///     .client_cert("/etc/kafka/client.pem", "/etc/kafka/client.key")
///     .build()?;
/// # Ok::<(), kafka_event_bus::client::connection::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    rustls: Arc<RustlsConfig>,
    provider: Option<TlsProvider>,
}

impl TlsConfig {
    /// Settings from files; see [`TlsConfigBuilder`].
    pub fn builder() -> TlsConfigBuilder {
        TlsConfigBuilder::default()
    }

    /// Uses a `rustls::ClientConfig` built elsewhere (another crypto provider, custom verification...).
    pub fn from_rustls(config: Arc<RustlsConfig>) -> Self {
        Self {
            rustls: config,
            provider: None,
        }
    }

    /// The rustls configuration in use.
    pub fn rustls(&self) -> &Arc<RustlsConfig> {
        &self.rustls
    }

    /// The crypto provider [`TlsConfigBuilder::build`] chose; `None` for [`from_rustls`](Self::from_rustls).
    pub fn provider(&self) -> Option<TlsProvider> {
        self.provider
    }

    /// Runs the TLS handshake on `stream`, checking the certificate against `host`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(Arc::clone(&self.rustls))
            .connect(name, stream)
            .await
    }
}

/// Two settings are equal when they share one rustls configuration (clones of one another).
impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.rustls, &other.rustls) && self.provider == other.provider
    }
}

impl Eq for TlsConfig {}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TlsConfig")
            .field("client_auth", &self.rustls.client_auth_cert_resolver.has_certs())
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TlsConfig`] from PEM files, on the first usable crypto provider ([`TlsProvider::detect`])
/// unless one is named with [`provider`](Self::provider).
#[derive(Debug, Clone)]
pub struct TlsConfigBuilder {
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    check_hostname: bool,
    provider: Option<TlsProvider>,
}

impl Default for TlsConfigBuilder {
    fn default() -> Self {
        Self {
            ca_file: None,
            client_cert: None,
            check_hostname: true,
            provider: None,
        }
    }
}

impl TlsConfigBuilder {
    /// Trust the CA certificates in this PEM file instead of the system's trust store.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Present this certificate chain and private key (PEM; RSA, ECDSA or Ed25519) to the broker (mTLS).
    pub fn client_cert(mut self, cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert_file.into(), key_file.into()));
        self
    }

    /// Whether the broker's certificate must name the host connected to (default `true`). Turning it off
    /// still verifies the chain against the trusted CAs, and logs a warning.
    pub fn check_hostname(mut self, check: bool) -> Self {
        self.check_hostname = check;
        self
    }

    /// Uses this crypto provider instead of the first usable one.
    pub fn provider(mut self, provider: TlsProvider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Picks the crypto provider, loads the files and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::NoProvider`] or [`TlsConfigError::ProviderUnavailable`] when no crypto provider
    /// can run here, [`TlsConfigError::Pem`] for a missing or malformed file, [`TlsConfigError::Rustls`]
    /// when rustls refuses the combination (for instance a key that does not match the certificate).
    pub fn build(self) -> Result<TlsConfig, TlsConfigError> {
        let chosen = match self.provider {
            Some(provider) => provider,
            None => TlsProvider::detect()?,
        };
        let provider = chosen.crypto_provider()?;
        debug!(provider = %chosen, "TLS crypto provider");
        let roots = Arc::new(self.roots()?);
        let builder = RustlsConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsConfigError::Rustls { source })?;
        let builder = if self.check_hostname {
            builder.with_root_certificates(roots)
        } else {
            warn!(
                "TLS hostname verification is off: the broker's certificate chain is checked, its name is not"
            );
            let inner = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| TlsConfigError::Rustls {
                    source: rustls::Error::General(e.to_string()),
                })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName { inner, provider }))
        };
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = load_certs(cert, "client certificate")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsConfigError::Pem {
                    what: "client key",
                    path: key.clone(),
                    message: e.to_string(),
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsConfigError::Rustls { source })?
            }
        };
        Ok(TlsConfig {
            rustls: Arc::new(config),
            provider: Some(chosen),
        })
    }

    fn roots(&self) -> Result<RootCertStore, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in load_certs(path, "CA certificates")? {
                    roots
                        .add(cert)
                        .map_err(|source| TlsConfigError::Rustls { source })?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for error in &native.errors {
                    warn!(%error, "could not read part of the system trust store");
                }
                let (added, ignored) = roots.add_parsable_certificates(native.certs);
                if ignored > 0 {
                    warn!(added, ignored, "some system CA certificates could not be parsed");
                }
            }
        }
        Ok(roots)
    }
}

fn load_certs(path: &PathBuf, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem_error = |message: String| TlsConfigError::Pem {
        what,
        path: path.clone(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no certificate in the file".into()));
    }
    Ok(certs)
}

/// Verifies the chain like WebPKI does, but accepts a certificate issued for another name
/// (`ssl_check_hostname = false`).
#[derive(Debug)]
struct AnyName {
    inner: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rustls::{ClientConnection, ServerConfig, ServerConnection};

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    /// Runs a TLS handshake in memory between `client` and a server presenting the test certificate
    /// on the same crypto provider, then sends one message each way.
    fn handshake(client: &TlsConfig) -> Result<(), rustls::Error> {
        let chain = CertificateDer::pem_file_iter(fixture("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
        let server = ServerConfig::builder_with_provider(Arc::clone(client.rustls().crypto_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut c = ClientConnection::new(Arc::clone(client.rustls()), name)?;
        let mut s = ServerConnection::new(Arc::new(server))?;
        let mut wire = Vec::new();
        for _ in 0..10 {
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            s.read_tls(&mut wire.as_slice()).unwrap();
            wire.clear();
            s.process_new_packets()?;
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            c.read_tls(&mut wire.as_slice()).unwrap();
            wire.clear();
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err(rustls::Error::General("the handshake did not finish".into()))
    }

    #[test]
    fn every_usable_provider_completes_a_handshake_and_is_reported() {
        for provider in TlsProvider::PREFERENCE {
            let built = TlsConfig::builder()
                .ca_file(fixture("ca.pem"))
                .provider(provider)
                .build();
            match (provider.unusable(), built) {
                (None, Ok(client)) => {
                    assert_eq!(client.provider(), Some(provider));
                    handshake(&client).unwrap();
                }
                (Some(_), Err(TlsConfigError::ProviderUnavailable { provider: p, .. })) => {
                    assert_eq!(p, provider);
                }
                (reason, built) => panic!("{provider}: {reason:?} but {built:?}"),
            }
        }
    }

    #[cfg(feature = "tls-rustcrypto")]
    #[test]
    fn a_provider_the_application_installed_comes_first() {
        // Installing is process-wide and once only: every TLS test in this process may see it, which
        // they all accept (it is RustCrypto, usable everywhere).
        let _ = CryptoProvider::install_default(rustls_rustcrypto::provider());
        assert_eq!(TlsProvider::detect().ok(), Some(TlsProvider::ProcessDefault));
        let client = TlsConfig::builder().ca_file(fixture("ca.pem")).build().unwrap();
        assert_eq!(client.provider(), Some(TlsProvider::ProcessDefault));
        handshake(&client).unwrap();
    }

    #[test]
    fn the_default_provider_completes_a_handshake_on_this_cpu() {
        // On a CPU without graviola's instructions (QEMU's default model, pre-Haswell x86_64) this
        // must pick another provider rather than panic inside graviola.
        let client = TlsConfig::builder().ca_file(fixture("ca.pem")).build().unwrap();
        handshake(&client).unwrap();
    }
}
