//! A throwaway local broker for integration tests and examples (feature `testing`).
