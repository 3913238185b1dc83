//! Shared test helpers for nuage's crate and end-to-end tests.
//!
//! Holds what more than one test suite needs: a real etcd to run the store
//! against ([`etcd`]), and a real `nuage server` with `kubectl` pointed at it
//! ([`server`]). A dev-dependency only; nothing here runs in production.

pub mod etcd;
pub mod http;
pub mod seed;
pub mod server;
