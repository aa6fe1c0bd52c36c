//! A Durable Object's own storage, SQL, alarm and all, as [`ObjectStorage`]: the one place that
//! calls the runtime's storage API.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen::JsValue;
use worker::{SqlStorage, SqlStorageValue, Storage};

use crate::domain::error::Error;
use crate::domain::time::Millis;
use crate::store::durable::record::{KnownTables, Tables};
use crate::store::durable::{ObjectStorage, Value};
use crate::store::promise::settled_of;

#[wasm_bindgen(inline_js = r#"
export function setAlarm(storage, at) {
  return storage.setAlarm(at);
}
export function clear(storage) {
  return storage.deleteAlarm().then(() => storage.deleteAll());
}
export function atomically(storage, change) {
  storage.transactionSync(() => {
    if (!change()) throw new Error('rolled back');
  });
}
"#)]
extern "C" {
    /// `storage.setAlarm(at)`.
    #[wasm_bindgen(catch, js_name = setAlarm)]
    fn set_alarm(storage: &JsValue, at: f64) -> Result<Promise, JsValue>;

    /// The alarm deleted, then everything else.
    #[wasm_bindgen(catch)]
    fn clear(storage: &JsValue) -> Result<Promise, JsValue>;

    /// `transactionSync(change)`, rolled back when `change` answers `false`: the throw that rolls
    /// it back is JavaScript's, so no Rust frame is unwound.
    #[wasm_bindgen(catch)]
    fn atomically(storage: &JsValue, change: &mut dyn FnMut() -> bool) -> Result<(), JsValue>;
}

/// Cloned for each request (a reference count, no crossing).
#[derive(Clone)]
pub struct DoStorage(Rc<Parts>);

struct Parts {
    sql: SqlStorage,
    /// The runtime's storage object itself, for what `worker` does not bind (`transactionSync`),
    /// and the alarm, awaited without `worker`'s `JsFuture` ([`settled_of`]).
    raw: JsValue,
    /// Which tables the object has, as far as it has learnt.
    known: KnownTables,
}

impl DoStorage {
    /// `raw` is the same storage as JavaScript holds it (`state.storage`).
    pub fn new(storage: Storage, raw: JsValue) -> Self {
        let sql = storage.sql();
        let known = KnownTables::default();
        Self(Rc::new(Parts { sql, raw, known }))
    }
}

fn storage_failure(err: worker::Error) -> Error {
    Error::StoreUnavailable(format!("durable object storage: {err}"))
}

/// Awaits the promise of a storage call: a throw or a rejection is a storage failure.
async fn done(call: Result<Promise, JsValue>) -> Result<(), Error> {
    let promise = call.map_err(|err| storage_failure(err.into()))?;
    let settled = settled_of(&promise).await;
    settled.map(drop).map_err(|err| storage_failure(err.into()))
}

impl ObjectStorage for DoStorage {
    fn exec(&self, query: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, Error> {
        let bindings = params
            .into_iter()
            .map(|value| match value {
                Value::Null => JsValue::NULL,
                Value::Integer(n) => JsValue::from_f64(n as f64),
                Value::Text(text) => JsValue::from_str(&text),
                Value::Blob(bytes) => Uint8Array::from(bytes.as_slice()).into(),
                Value::BlobOutside(outside) => outside.0.into(),
            })
            .collect::<Vec<_>>();
        let cursor = self
            .0
            .sql
            .exec_raw(query, bindings)
            .map_err(storage_failure)?;
        cursor
            .raw()
            .map(|row| {
                let row = row.map_err(storage_failure)?;
                Ok(row
                    .into_iter()
                    .map(|value| match value {
                        SqlStorageValue::Integer(n) => Value::Integer(n),
                        // Whole numbers past 2^53 come back as floats; ours never get there.
                        SqlStorageValue::Float(f) => Value::Integer(f as i64),
                        SqlStorageValue::String(text) => Value::Text(text),
                        SqlStorageValue::Blob(bytes) => Value::Blob(bytes),
                        _ => Value::Null,
                    })
                    .collect())
            })
            .collect()
    }

    async fn set_alarm(&self, at: Millis) -> Result<(), Error> {
        done(set_alarm(&self.0.raw, at as f64)).await
    }

    async fn delete_all(&self) -> Result<(), Error> {
        self.0.known.forget();
        done(clear(&self.0.raw)).await?;
        self.0.known.set(Tables::default());
        Ok(())
    }

    fn atomically(&self, change: &mut dyn FnMut() -> Result<(), Error>) -> Result<(), Error> {
        let failure = RefCell::new(None);
        let mut run = || match change() {
            Ok(()) => true,
            Err(err) => {
                failure.replace(Some(err));
                false
            }
        };
        let outcome = atomically(&self.0.raw, &mut run);
        if outcome.is_err() {
            self.0.known.forget();
        }
        if let Some(err) = failure.take() {
            return Err(err);
        }
        outcome.map_err(|err| Error::StoreUnavailable(format!("durable object storage: {err:?}")))
    }

    fn known_tables(&self) -> &KnownTables {
        &self.0.known
    }
}
