//! The services: the session operations, a subject's sessions, the permission cache. They
//! decide what to read and write, generic over the storage seam ([`crate::store`]), so the same
//! rules run against KV in the worker, SQLite in a Durable Object, and the in-memory stores in
//! native tests.
//!
//! Invariant: knows nothing of HTTP (no request, header or status); imports only `domain` and
//! `store`.

pub mod cache;
pub mod sessions;
pub mod subjects;

#[cfg(test)]
mod tests;
