//! Tests that drive more than one service, or a service on strong mode's storage: they sit here,
//! above the services and the stores they use, so that no test makes a lower layer import a
//! higher one.

mod at_rest;
mod events;
mod renewal;
#[cfg(not(target_arch = "wasm32"))]
mod strong;
mod subjects;

/// What the tests across services share: sessions by number, a subject, a body.
mod fixtures {
    use crate::domain::id::SessionId;
    use crate::domain::json::JsonObject;
    use crate::domain::subject::Subject;

    pub fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    pub fn ada() -> Subject {
        Subject::new(b"ada@example.com", None).unwrap()
    }

    pub fn data() -> JsonObject {
        JsonObject::from_bytes(br#"{"user":"ada"}"#.to_vec()).unwrap()
    }
}
