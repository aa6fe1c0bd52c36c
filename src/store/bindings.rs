//! The Worker's bindings (its KV namespace, its Durable Object namespaces, the events' Queue),
//! looked up in `env` once per isolate and kept.
//!
//! A binding is the same object for every request and every object of an isolate (what the
//! runtime's own `import { env } from "cloudflare:workers"` relies on), and bindings change
//! only with a new deployment, which starts new isolates. Looked up on each use, a binding cost
//! a string made in JavaScript and a property read, and a namespace through `worker`'s
//! `Env::durable_object` two more reads and a comparison of its class's name: up to six
//! lookups a request in a session's object.

use std::cell::RefCell;

use worker::js_sys::Reflect;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{Env, ObjectNamespace};

use crate::domain::error::Error;

thread_local! {
    /// Each binding looked up so far, by name (`undefined` for one the Worker does not have).
    static KEPT: RefCell<Vec<(&'static str, JsValue)>> = const { RefCell::new(Vec::new()) };
}

/// The binding `name`, or `None` when the Worker has none by that name.
pub fn binding(env: &Env, name: &'static str) -> Option<JsValue> {
    let value = KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some((_, value)) = kept.iter().find(|(kept, _)| *kept == name) {
            return value.clone();
        }
        let value = Reflect::get(env, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
        kept.push((name, value.clone()));
        value
    });
    (!value.is_undefined() && !value.is_null()).then_some(value)
}

/// The Durable Object namespace bound as `name`.
pub fn namespace(env: &Env, name: &'static str) -> Result<ObjectNamespace, Error> {
    binding(env, name)
        .map(JsCast::unchecked_into)
        .ok_or_else(|| Error::Internal(format!("no Durable Object binding `{name}`")))
}
