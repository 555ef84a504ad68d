//! Black-box tests: each starts the real `wharf` binary on an ephemeral port
//! with a temporary data dir and talks HTTP to it. One test binary with a
//! module per capability keeps link time down.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod default_manifest;
mod support;
mod upstream;

mod abuse;
mod acme;
mod browser;
mod compile_cache;
mod content;
mod docs_page;
mod eye;
mod hostile;
mod mandrill;
mod manifest;
mod operator;
mod orders;
mod p3;
mod queue;
mod reuse;
mod sandbox;
mod scaffold;
mod schedules;
mod schemathesis;
mod serving;
mod standard_components;
mod store;
mod users;
