//! The domain: what a session, a subject, an id, a version and a JSON body are, and the rules
//! between them. Pure Rust: nothing here touches `worker`, JavaScript, storage or HTTP, and time
//! is always a parameter, so every rule runs natively under `cargo test` in milliseconds.
//!
//! Invariant: no module here imports from outside `domain`.

pub mod auth;
pub mod base64;
pub mod binding;
pub mod config;
pub mod derive;
pub mod device;
pub mod digest;
pub mod error;
pub mod event;
pub mod id;
pub mod json;
pub mod merge;
pub mod percent;
pub mod precondition;
pub mod renewal;
pub mod session;
pub mod subject;
pub mod time;
