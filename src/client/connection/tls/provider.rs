//! Which rustls crypto provider secures broker connections, chosen at run time and never by a panic.
//!
//! In order of preference: the process-wide provider the application installed
//! ([`CryptoProvider::install_default`]), graviola (feature `tls-graviola`; x86_64 and aarch64 CPUs with
//! the instructions its assembly uses, checked here before it is touched), RustCrypto (feature
//! `tls-rustcrypto`; portable). None usable is a [`TlsConfigError::NoProvider`].

use std::{fmt, sync::Arc};

use rustls::crypto::CryptoProvider;

use super::TlsConfigError;

/// A rustls crypto provider this crate can secure connections with.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::connection::TlsProvider;
///
/// // What `TlsConfig::builder()` picks on this machine, and why the others were passed over.
/// match TlsProvider::detect() {
///     Ok(provider) => println!("TLS through {provider}"),
///     Err(e) => println!("no TLS: {e}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsProvider {
    /// The process-wide default the application installed with [`CryptoProvider::install_default`]
    /// (ring, aws-lc-rs or any other: the application's choice).
    ProcessDefault,
    /// graviola (feature `tls-graviola`): pure Rust with constant-time assembly, x86_64 with aes,
    /// pclmulqdq, bmi1, adx, avx and avx2, or aarch64 with neon, aes, pmull and sha2.
    Graviola,
    /// rustls-rustcrypto (feature `tls-rustcrypto`): the RustCrypto algorithms, portable to every target.
    RustCrypto,
}

impl TlsProvider {
    /// Every provider, in the order [`detect`](Self::detect) tries them.
    pub const PREFERENCE: [TlsProvider; 3] = [Self::ProcessDefault, Self::Graviola, Self::RustCrypto];

    /// A short name: `process-default`, `graviola` or `rustcrypto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProcessDefault => "process-default",
            Self::Graviola => "graviola",
            Self::RustCrypto => "rustcrypto",
        }
    }

    /// The first usable provider in [`PREFERENCE`](Self::PREFERENCE) order.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::NoProvider`], saying why each one is unusable here.
    pub fn detect() -> Result<TlsProvider, TlsConfigError> {
        let mut reasons = Vec::new();
        for provider in Self::PREFERENCE {
            match provider.unusable() {
                None => return Ok(provider),
                Some(reason) => reasons.push(format!("{provider}: {reason}")),
            }
        }
        Err(TlsConfigError::NoProvider {
            reasons: reasons.join("; "),
        })
    }

    /// Why this provider cannot be used in this process, or `None` when it can.
    pub fn unusable(self) -> Option<String> {
        match self {
            Self::ProcessDefault => CryptoProvider::get_default()
                .is_none()
                .then(|| "the application installed no process-wide provider".to_owned()),
            Self::Graviola => graviola::unusable(),
            Self::RustCrypto => rustcrypto::unusable(),
        }
    }

    /// The provider itself, after checking it is usable.
    pub(crate) fn crypto_provider(self) -> Result<Arc<CryptoProvider>, TlsConfigError> {
        if let Some(reason) = self.unusable() {
            return Err(TlsConfigError::ProviderUnavailable {
                provider: self,
                reason,
            });
        }
        let provider = match self {
            Self::ProcessDefault => CryptoProvider::get_default().map(Arc::clone),
            Self::Graviola => graviola::provider(),
            Self::RustCrypto => rustcrypto::provider(),
        };
        provider.ok_or_else(|| TlsConfigError::ProviderUnavailable {
            provider: self,
            reason: "not built in".to_owned(),
        })
    }
}

impl fmt::Display for TlsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(all(
    feature = "tls-graviola",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod graviola {
    use std::sync::Arc;

    use rustls::crypto::CryptoProvider;

    /// The CPU features graviola's assembly needs (graviola asserts on them at first use).
    #[cfg(target_arch = "x86_64")]
    fn missing_cpu_features() -> Vec<&'static str> {
        [
            ("aes", std::arch::is_x86_feature_detected!("aes")),
            ("pclmulqdq", std::arch::is_x86_feature_detected!("pclmulqdq")),
            ("bmi1", std::arch::is_x86_feature_detected!("bmi1")),
            ("adx", std::arch::is_x86_feature_detected!("adx")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ]
        .into_iter()
        .filter_map(|(name, present)| (!present).then_some(name))
        .collect()
    }

    /// The CPU features graviola's assembly needs (graviola asserts on them at first use).
    #[cfg(target_arch = "aarch64")]
    fn missing_cpu_features() -> Vec<&'static str> {
        [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("aes", std::arch::is_aarch64_feature_detected!("aes")),
            ("pmull", std::arch::is_aarch64_feature_detected!("pmull")),
            ("sha2", std::arch::is_aarch64_feature_detected!("sha2")),
        ]
        .into_iter()
        .filter_map(|(name, present)| (!present).then_some(name))
        .collect()
    }

    pub(super) fn unusable() -> Option<String> {
        let missing = missing_cpu_features();
        (!missing.is_empty()).then(|| format!("this CPU lacks {}", missing.join(", ")))
    }

    pub(super) fn provider() -> Option<Arc<CryptoProvider>> {
        Some(Arc::new(rustls_graviola::default_provider()))
    }
}

#[cfg(not(all(
    feature = "tls-graviola",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod graviola {
    use std::sync::Arc;

    use rustls::crypto::CryptoProvider;

    pub(super) fn unusable() -> Option<String> {
        Some(if cfg!(feature = "tls-graviola") {
            "graviola supports x86_64 and aarch64 only".to_owned()
        } else {
            "built without the tls-graviola feature".to_owned()
        })
    }

    pub(super) fn provider() -> Option<Arc<CryptoProvider>> {
        None
    }
}

#[cfg(feature = "tls-rustcrypto")]
mod rustcrypto {
    use std::sync::Arc;

    use rustls::crypto::CryptoProvider;

    pub(super) fn unusable() -> Option<String> {
        None
    }

    pub(super) fn provider() -> Option<Arc<CryptoProvider>> {
        Some(Arc::new(rustls_rustcrypto::provider()))
    }
}

#[cfg(not(feature = "tls-rustcrypto"))]
mod rustcrypto {
    use std::sync::Arc;

    use rustls::crypto::CryptoProvider;

    pub(super) fn unusable() -> Option<String> {
        Some("built without the tls-rustcrypto feature".to_owned())
    }

    pub(super) fn provider() -> Option<Arc<CryptoProvider>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_picks_a_usable_provider_and_never_panics() {
        // Whatever this CPU is, detection answers instead of asserting. (Another test may install a
        // process-wide provider meanwhile, so only "usable" is stable here, not which one.)
        match TlsProvider::detect() {
            Ok(picked) => assert_eq!(picked.unusable(), None),
            Err(TlsConfigError::NoProvider { reasons }) => {
                assert!(
                    TlsProvider::PREFERENCE.iter().all(|p| p.unusable().is_some()),
                    "{reasons}"
                );
            }
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn an_unusable_provider_is_a_typed_error() {
        for provider in TlsProvider::PREFERENCE {
            match (provider.unusable(), provider.crypto_provider()) {
                (None, Ok(_)) => {}
                (
                    Some(reason),
                    Err(TlsConfigError::ProviderUnavailable {
                        provider: p,
                        reason: r,
                    }),
                ) => {
                    assert_eq!((p, r), (provider, reason));
                }
                (reason, other) => panic!("{provider}: {reason:?} but {other:?}"),
            }
        }
    }

    #[cfg(feature = "tls-rustcrypto")]
    #[test]
    fn rustcrypto_is_usable_everywhere() {
        assert_eq!(TlsProvider::RustCrypto.unusable(), None);
        assert!(TlsProvider::detect().is_ok());
    }
}
