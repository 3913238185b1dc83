//! Shared test helpers for nuage's crate and end-to-end tests.
//!
//! Holds what more than one test suite needs: a real etcd to run the store
//! against ([`etcd`]). A dev-dependency only; nothing here runs in production.

pub mod etcd;
