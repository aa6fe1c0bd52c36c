//! Tests that drive more than one service, or a service on strong mode's storage: they sit here,
//! above the services and the stores they use, so that no test makes a lower layer import a
//! higher one.

mod at_rest;
mod auth;
mod binding;
mod events;
#[cfg(not(target_arch = "wasm32"))]
mod races;
mod renewal;
#[cfg(not(target_arch = "wasm32"))]
mod strong;
mod subjects;

/// What the tests across services share: sessions by number, a subject, a body.
mod fixtures {
    use crate::domain::derive::Handle;
    use crate::domain::id::SessionId;
    use crate::domain::json::JsonObject;
    use crate::domain::subject::Subject;
    use crate::store::events::Journal;

    pub fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    pub fn ada() -> Subject {
        Subject::new(b"ada@example.com", None).unwrap()
    }

    pub fn data() -> JsonObject {
        JsonObject::from_bytes(br#"{"user":"ada"}"#.to_vec()).unwrap()
    }

    /// `(type, reason, handle number)` of each event recorded in `journal`, each first given
    /// to `check`.
    pub fn taken(
        journal: &Journal,
        check: impl Fn(&serde_json::Value),
    ) -> Vec<(String, String, u8)> {
        let number = |handle: &str| (1..=30).find(|n| Handle::of(&id(*n)).to_string() == handle);
        journal
            .take()
            .iter()
            .map(|event| {
                let value: serde_json::Value = serde_json::from_str(event.as_str()).unwrap();
                check(&value);
                let text = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
                let handle = number(&text("handle")).unwrap_or(0);
                (text("type"), text("reason"), handle)
            })
            .collect()
    }

    pub fn event(kind: &str, reason: &str, n: u8) -> (String, String, u8) {
        (kind.into(), reason.into(), n)
    }
}
