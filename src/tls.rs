//! TLS process setup.
//!
//! kube, octocrab, reqwest and sqlx all use rustls; with more than one crypto backend
//! compiled in, rustls cannot pick a default and the first TLS client panics. Install
//! ring once, before any client is built.

/// Installs ring as the process-wide rustls provider. Idempotent; safe from tests.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
