//! TLS for broker connections: rustls on a pure-Rust crypto provider (graviola), never ring or aws-lc.
//!
//! [`TlsConfig`] is built either from files (a CA bundle, and for mTLS a client certificate and key, all
//! PEM) or from a `rustls::ClientConfig` the user built with a provider of their choice. With no CA file
//! the system's trust store is used.

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
use tracing::warn;

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
}

impl TlsConfig {
    /// Settings from files; see [`TlsConfigBuilder`].
    pub fn builder() -> TlsConfigBuilder {
        TlsConfigBuilder::default()
    }

    /// Uses a `rustls::ClientConfig` built elsewhere (another crypto provider, custom verification...).
    pub fn from_rustls(config: Arc<RustlsConfig>) -> Self {
        Self { rustls: config }
    }

    /// The rustls configuration in use.
    pub fn rustls(&self) -> &Arc<RustlsConfig> {
        &self.rustls
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

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TlsConfig")
            .field("client_auth", &self.rustls.client_auth_cert_resolver.has_certs())
            .finish_non_exhaustive()
    }
}

/// Builds a [`TlsConfig`] from PEM files, on the graviola crypto provider.
#[derive(Debug, Clone)]
pub struct TlsConfigBuilder {
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    check_hostname: bool,
}

impl Default for TlsConfigBuilder {
    fn default() -> Self {
        Self {
            ca_file: None,
            client_cert: None,
            check_hostname: true,
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

    /// Loads the files and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::Pem`] for a missing or malformed file, [`TlsConfigError::Rustls`] when rustls
    /// refuses the combination (for instance a key that does not match the certificate).
    pub fn build(self) -> Result<TlsConfig, TlsConfigError> {
        let provider = Arc::new(rustls_graviola::default_provider());
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
