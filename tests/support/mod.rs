//! Shared helpers for the integration tests; each test file includes them with
//! `mod support;`. One module per fake or helper; here: an in-process Triage on an
//! ephemeral port, the real `triage` binary, a real Alertmanager, Go's template
//! renderer, and a raw HTTP/1.1 writer for requests a polite client would not send.
#![allow(dead_code)]

pub mod fake_cluster;
pub mod fake_gitea;
pub mod fake_github;
mod harness;
pub mod payloads;
pub mod pg;
pub mod signals;

#[allow(unused_imports)]
pub use harness::*;
