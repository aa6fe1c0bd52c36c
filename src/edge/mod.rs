//! The HTTP edge: the crossing into JavaScript, how a request's future runs (in a session
//! object, in its turn), the heap's layout, request parsing, the route table and its one
//! dispatch (forwarding to objects included), the handlers, authentication, settings and request
//! logs. A handler parses what it needs at the edge, calls
//! a service, and shapes the reply.
//!
//! Invariant: the only layer that knows HTTP; it calls services and builds stores, never decides
//! a session rule or a storage key itself.

pub mod auth;
pub mod dispatch;
pub mod forward;
pub mod gate;
pub mod handlers;
pub mod heap;
pub mod http;
pub mod log;
pub mod routes;
pub mod runtime;
pub mod settings;
pub mod tasks;
