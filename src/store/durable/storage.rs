//! A Durable Object's own storage, SQL, alarm and all, as [`ObjectStorage`]: the one place that
//! calls the runtime's storage API.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsCast;
use worker::js_sys::{self, Promise, Uint8Array};
use worker::wasm_bindgen::JsValue;
use worker::{SqlStorage, Storage};

use crate::domain::error::Error;
use crate::domain::time::Millis;
use crate::store::durable::crossing::{self, Blob};
use crate::store::durable::record::{KnownTables, Tables};
use crate::store::durable::{ObjectStorage, Value};
use crate::store::promise::settled_of;

#[wasm_bindgen(inline_js = r#"
// A statement run with its parameters and rows each in one string (crossing.rs says how they
// are written), the blobs beside them: the answer is `[rows, ...blobs]`.
export function execute(sql, query, params, blobs) {
  const bound = [];
  let blob = 0;
  for (let at = 0; at < params.length; ) {
    const tag = params[at];
    if (tag === 'n') {
      bound.push(null);
      at += 1;
    } else if (tag === 'b') {
      bound.push(blobs[blob++]);
      at += 1;
    } else if (tag === 'i') {
      const end = params.indexOf(';', at);
      bound.push(Number(params.slice(at + 1, end)));
      at = end + 1;
    } else {
      const colon = params.indexOf(':', at);
      const end = colon + 1 + Number(params.slice(at + 1, colon));
      bound.push(params.slice(colon + 1, end));
      at = end;
    }
  }
  const answer = [''];
  let rows = '';
  for (const row of sql.exec(query, ...bound).raw()) {
    for (const value of row) {
      if (typeof value === 'number') rows += 'i' + Math.trunc(value) + ';';
      else if (typeof value === 'string') rows += 't' + value.length + ':' + value;
      else if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
        answer.push(value instanceof ArrayBuffer ? new Uint8Array(value) : value);
        rows += 'b';
      } else rows += 'n';
    }
    rows += '\n';
  }
  answer[0] = rows;
  return answer;
}
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
    /// `query` run on `sql` with `params` (and their `blobs`) as [`crossing`] writes them:
    /// `[rows, ...blobs]`.
    #[wasm_bindgen(catch)]
    fn execute(
        sql: &JsValue,
        query: &str,
        params: &str,
        blobs: &js_sys::Array,
    ) -> Result<js_sys::Array, JsValue>;

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
        let (params, blobs) = crossing::params(params);
        let blobs: js_sys::Array = blobs
            .into_iter()
            .map(|blob| match blob {
                Blob::Outside(outside) => outside.0.into(),
                Blob::Here(bytes) => JsValue::from(Uint8Array::from(bytes.as_slice())),
            })
            .collect();
        let answer = execute(self.0.sql.as_ref(), query, &params, &blobs)
            .map_err(|err| storage_failure(err.into()))?;
        let rows = answer.get(0).as_string();
        let rows = rows.ok_or_else(|| storage_failure("an answer without its rows".into()))?;
        let mut next = 0;
        crossing::rows(&rows, || {
            next += 1;
            let blob = answer.get(next);
            let blob = blob.dyn_ref::<Uint8Array>();
            blob.map(Uint8Array::to_vec)
                .ok_or_else(|| storage_failure("a blob missing from the answer".into()))
        })
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
