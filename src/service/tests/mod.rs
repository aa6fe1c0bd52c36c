//! Tests that drive more than one service, or a service on strong mode's storage: they sit here,
//! above the services and the stores they use, so that no test makes a lower layer import a
//! higher one.

mod at_rest;
mod events;
#[cfg(not(target_arch = "wasm32"))]
mod strong;
mod subjects;
