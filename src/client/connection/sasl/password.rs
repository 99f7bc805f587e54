//! A SASL password in memory: wiped when dropped, never printed.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A password that overwrites its bytes with zeros when dropped (or [`zeroize`](Zeroize::zeroize)d)
/// and shows as `***` in `Debug`. Copies it hands out (a PLAIN message, a request on the wire) are
/// not covered.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Password(String);

impl Password {
    pub(crate) fn new(password: String) -> Self {
        Self(password)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl Zeroize for Password {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Password {}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiped_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn is_wiped_on_drop_and_never_shown() {
        wiped_on_drop::<Password>();
        wiped_on_drop::<super::super::SaslConfig>();
        let mut password = Password::new("hunter2-secret".to_owned());
        assert_eq!(format!("{password:?}"), "***");
        assert_eq!(password.as_str(), "hunter2-secret");
        password.zeroize();
        assert_eq!(password.as_str(), "");
    }
}
