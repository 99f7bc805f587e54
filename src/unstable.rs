//! The `unstable` feature: internals that the crate's own tests, benches, examples and fuzz targets reach
//! into, public only with that feature and with no semver promise.

/// Declares an item (a module, a re-export, a type, a function or method) `pub` with the `unstable`
/// feature and `pub(crate)` without it, so it is part of the public API only for those who opt out of
/// semver.
macro_rules! unstable {
    ($(#[$attr:meta])* pub $($item:tt)*) => {
        #[cfg(feature = "unstable")]
        #[cfg_attr(docsrs, doc(cfg(feature = "unstable")))]
        $(#[$attr])*
        pub $($item)*

        #[cfg(not(feature = "unstable"))]
        #[allow(unreachable_pub, dead_code, unused_imports)]
        $(#[$attr])*
        pub(crate) $($item)*
    };
}
