//! Tests of what only runs inside Wasm: ids from the platform's randomness
//! (`crypto.getRandomValues` through getrandom), and sealing with WebCrypto (`crypto.subtle`).
//! Run under Node by wasm-bindgen-test-runner.
#![cfg(target_arch = "wasm32")]

use std::collections::HashSet;

use session_state::domain::id::SessionId;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn generated_ids_are_canonical_v4_uuids() {
    for _ in 0..1000 {
        let id = SessionId::generate().expect("the platform has randomness");
        let text = id.to_string();
        assert_eq!(SessionId::parse(&text), Some(id), "{text}");
        assert_eq!(&text[14..15], "4");
    }
}

#[wasm_bindgen_test]
fn generated_ids_are_distinct() {
    let ids: HashSet<String> = (0..10_000)
        .map(|_| SessionId::generate().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 10_000);
}

/// Every random hex digit of 10,000 ids takes each of its values close to equally often: a
/// constant, biased or low-entropy source fails this (each count is expected near 625, with a
/// standard deviation near 24; the bounds are five deviations).
#[wasm_bindgen_test]
fn every_random_digit_is_uniform() {
    const IDS: usize = 10_000;
    let mut counts = [[0usize; 16]; 36];
    for _ in 0..IDS {
        let text = SessionId::generate().unwrap().to_string();
        for (position, digit) in text.chars().enumerate() {
            if let Some(value) = digit.to_digit(16) {
                counts[position][value as usize] += 1;
            }
        }
    }
    for (position, values) in counts.iter().enumerate() {
        match position {
            8 | 13 | 18 | 23 => continue, // hyphens
            14 => assert_eq!(values[4], IDS, "the version digit is always 4"),
            19 => {
                // The variant digit: 8, 9, a or b, each a quarter of the time.
                for (value, &count) in values.iter().enumerate() {
                    let expected = if (8..12).contains(&value) { 2500 } else { 0 };
                    assert!(
                        count.abs_diff(expected) <= 220,
                        "digit 19 = {value:x}: {count}"
                    );
                }
            }
            _ => {
                for (value, &count) in values.iter().enumerate() {
                    assert!(
                        (505..=745).contains(&count),
                        "digit {position} = {value:x}: {count}"
                    );
                }
            }
        }
    }
}

/// A promise, and the functions that fulfil and reject it.
fn pending() -> (
    worker::js_sys::Promise,
    worker::js_sys::Function,
    worker::js_sys::Function,
) {
    let mut functions = None;
    let promise =
        worker::js_sys::Promise::new(&mut |resolve, reject| functions = Some((resolve, reject)));
    let (resolve, reject) = functions.expect("the executor runs at once");
    (promise, resolve, reject)
}

mod sealing {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use hmac::{Hmac, Mac};
    use session_state::data::{Buffer, Data};
    use session_state::domain::derive::{StorageKey, WrapKey};
    use session_state::domain::id::SessionId;
    use session_state::domain::merge::Sink;
    use session_state::domain::session::{Meta, Policy};
    use session_state::seal::{
        lifecycle_bytes, Aead as _, Sealer, WebCrypto, IN_WASM, LIFECYCLE, OUTSIDE,
    };
    use sha2::Sha256;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Opens an `s3` record with RustCrypto alone, as the storage schema describes it.
    fn open_with_rustcrypto(id: &SessionId, meta: &Meta, bytes: &[u8]) -> Option<Vec<u8>> {
        let key = StorageKey::of(id);
        assert_eq!(&bytes[..2], b"s3");
        assert_eq!(&bytes[2..2 + LIFECYCLE], &lifecycle_bytes(meta)[..]);
        let head = 2 + LIFECYCLE;
        assert_eq!(bytes[head], 1, "one slot");
        let (header, rest) = bytes.split_at(head + 1 + 80);
        let slot = &header[head + 1..];
        let (salt, wrapped) = slot.split_at(32);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&WrapKey::of(id).0).unwrap();
        mac.update(b"session-state/v2/slot-key\0");
        mac.update(salt);
        let slot_key = mac.finalize().into_bytes();
        let slot_aad = [&b"session-state/v2/slot\0"[..], key.bytes()].concat();
        let payload = Payload {
            msg: wrapped,
            aad: &slot_aad,
        };
        let data_key = Aes256Gcm::new_from_slice(&slot_key)
            .ok()?
            .decrypt(&Nonce::try_from(&salt[..12]).ok()?, payload)
            .ok()?;
        let (nonce, sealed) = rest.split_at(12);
        let data_aad = [&b"session-state/v2/data\0"[..], key.bytes(), header].concat();
        let payload = Payload {
            msg: sealed,
            aad: &data_aad,
        };
        let cipher = Aes256Gcm::new_from_slice(&data_key).ok()?;
        cipher.decrypt(&Nonce::try_from(nonce).ok()?, payload).ok()
    }

    /// What the worker seals (small data in Wasm, large through WebCrypto) is AES-256-GCM as
    /// RustCrypto reads it, byte for byte, and opens only for the same id and key.
    #[wasm_bindgen_test]
    async fn records_are_the_envelope_the_native_tests_check() {
        let id = SessionId::generate().unwrap();
        let other = SessionId::generate().unwrap();
        let (wrap, key) = (WrapKey::of(&id), StorageKey::of(&id));
        let policy = Policy {
            idle_ttl: 1800,
            max_lifetime: 86_400,
            touch_interval: 60,
            max_bytes: 65_536,
            not_before: None,
        };
        let meta = Meta::new(1_764_000_000_000, Some(60), policy);
        let sealer = Sealer(WebCrypto);
        // Both sides of the limit between Wasm and WebCrypto, and of the earlier one (2 KiB).
        for len in [
            20,
            IN_WASM,
            IN_WASM + 1,
            2048,
            2049,
            60_000,
            OUTSIDE - 1,
            OUTSIDE,
        ] {
            let data = vec![b'c'; len];
            let sealed = sealer
                .seal(&wrap, &key, &meta, data.as_slice().into())
                .await
                .unwrap();
            assert_eq!(
                matches!(sealed, Data::Outside(_)),
                len >= OUTSIDE,
                "a large record is made outside Wasm memory ({len})"
            );
            let bytes = sealed.into_vec();
            assert_eq!(
                open_with_rustcrypto(&id, &meta, &bytes).as_deref(),
                Some(&data[..]),
                "{len}"
            );
            assert_eq!(open_with_rustcrypto(&other, &meta, &bytes), None, "{len}");
            let again = sealer
                .seal(&wrap, &key, &meta, data.as_slice().into())
                .await
                .unwrap()
                .into_vec();
            assert_ne!(bytes[..160], again[..160], "a fresh data key each write");
            let read = sealer
                .open(&wrap, &key, again.clone())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((read.data, read.lifecycle), (data, Some(meta)), "{len}");
            let moved = sealer
                .open(&wrap, &StorageKey::of(&other), bytes.clone())
                .await
                .unwrap();
            assert!(moved.is_none(), "{len}");
            for at in [10, 100, 170] {
                let mut altered = bytes.clone();
                altered[at] ^= 1;
                let opened = sealer.open(&wrap, &key, altered).await.unwrap();
                assert!(opened.is_none(), "{len}, byte {at}");
            }
        }
    }

    /// A large result is written outside Wasm memory in pieces of every size (gathered, or
    /// copied at once), holds exactly what was written, and is sealed from there into the same
    /// record format; a small one stays in Wasm.
    #[wasm_bindgen_test]
    async fn data_written_outside_wasm_is_sealed_as_written() {
        let id = SessionId::generate().unwrap();
        let (wrap, key) = (WrapKey::of(&id), StorageKey::of(&id));
        let meta = Meta::new(
            1_764_000_000_000,
            None,
            Policy {
                idle_ttl: 1800,
                max_lifetime: 86_400,
                touch_interval: 60,
                max_bytes: 1 << 20,
                not_before: None,
            },
        );
        let mut expected = Vec::new();
        let mut piece = 0u8;
        for len in [1, 7, 16_383, 16_384, 16_385, 100_000, 3, 200_000, 5] {
            expected.extend((0..len).map(|i| piece.wrapping_add(i as u8)));
            piece = piece.wrapping_add(1);
        }
        assert!(matches!(WebCrypto.buffer(2048), Buffer::Here(_)));
        let mut buffer = WebCrypto.buffer(expected.len());
        assert!(matches!(buffer, Buffer::Outside(_)));
        let mut at = 0;
        for len in [1, 7, 16_383, 16_384, 16_385, 100_000, 3, 200_000, 5] {
            buffer.put(&expected[at..at + len]);
            at += len;
        }
        let data = buffer.into_data();
        let Data::Outside(outside) = &data else {
            panic!("a large result is written outside Wasm memory");
        };
        assert_eq!(outside.0.to_vec(), expected);
        let bytes = Sealer(WebCrypto)
            .seal(&wrap, &key, &meta, data.plain())
            .await
            .unwrap()
            .into_vec();
        assert_eq!(open_with_rustcrypto(&id, &meta, &bytes), Some(expected));
    }
}

/// A session object's order ([`Turns`]): a request that waits holds back the ones after it until
/// it is done, and one that comes when nothing is pending is answered from its first poll.
mod turns {
    use std::cell::RefCell;
    use std::rc::Rc;

    use session_state::gate::{self, Gate, Turns};
    use wasm_bindgen::{JsCast as _, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::js_sys::{self, Function, Promise};
    use worker::wasm_bindgen_futures::JsFuture;

    use super::pending;

    /// A promise settled after every microtask queued before it: by then the turns have seen
    /// every settlement there is.
    async fn a_task_later() {
        let (promise, resolve, _) = pending();
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into()).unwrap();
        Function::from(set_timeout)
            .call2(&global, &resolve, &0.into())
            .unwrap();
        JsFuture::from(promise).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn each_request_waits_for_the_one_before_it() {
        let turns = Turns::new();
        let steps = Rc::new(RefCell::new(Vec::new()));
        let (release, resolve, _) = pending();
        let log = steps.clone();
        let first = gate::run(
            async move {
                log.borrow_mut().push("first begins");
                JsFuture::from(release).await?;
                log.borrow_mut().push("first ends");
                Ok(JsValue::from(1))
            },
            Gate::InTurn(&turns),
        );
        assert!(first.is_instance_of::<Promise>(), "the first one waits");
        let log = steps.clone();
        let second = gate::run(
            async move {
                log.borrow_mut().push("second");
                Ok(JsValue::from(2))
            },
            Gate::InTurn(&turns),
        );
        a_task_later().await;
        assert_eq!(
            *steps.borrow(),
            ["first begins"],
            "the second waits its turn"
        );
        resolve.call0(&JsValue::UNDEFINED).unwrap();
        assert_eq!(JsFuture::from(Promise::from(second)).await.unwrap(), 2);
        assert_eq!(JsFuture::from(Promise::from(first)).await.unwrap(), 1);
        assert_eq!(*steps.borrow(), ["first begins", "first ends", "second"]);
        a_task_later().await;
        let third = gate::run(async { Ok(JsValue::from(3)) }, Gate::InTurn(&turns));
        assert_eq!(
            third, 3,
            "nothing pending: answered as it is, not as a promise"
        );
    }

    #[wasm_bindgen_test]
    async fn a_failed_request_does_not_stop_the_ones_after_it() {
        let turns = Turns::new();
        let (release, reject, _) = pending();
        let first = gate::run(
            async move {
                JsFuture::from(release).await?;
                Err(JsValue::from("failed"))
            },
            Gate::InTurn(&turns),
        );
        let second = gate::run(async { Ok(JsValue::from(2)) }, Gate::InTurn(&turns));
        reject.call0(&JsValue::UNDEFINED).unwrap();
        assert!(JsFuture::from(Promise::from(first)).await.is_err());
        assert_eq!(JsFuture::from(Promise::from(second)).await.unwrap(), 2);
    }
}

/// Promises awaited from Rust through one closure per isolate (`store::promise`), in tasks of the
/// worker's own executor (`gate::run`, which hands a future that waits to it).
mod awaits {
    use std::cell::RefCell;
    use std::rc::Rc;

    use session_state::gate::{self, Gate};
    use session_state::promise::settled_of;
    use wasm_bindgen::{JsCast as _, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::js_sys::Promise;
    use worker::wasm_bindgen_futures::JsFuture;

    use super::pending;

    #[wasm_bindgen_test]
    async fn an_await_gets_its_own_promise_outcome() {
        let fulfilled = Promise::resolve(&JsValue::from(7));
        assert_eq!(settled_of(&fulfilled).await, Ok(JsValue::from(7)));
        let rejected = Promise::reject(&JsValue::from("no"));
        assert_eq!(settled_of(&rejected).await, Err(JsValue::from("no")));
    }

    /// Tasks that wait on promises settled in another order than they were awaited each get
    /// their own outcome, and each task's promise settles with what its future returned.
    #[wasm_bindgen_test]
    async fn tasks_resume_with_their_own_outcomes_in_any_order() {
        let (one, fulfil_one, _) = pending();
        let (two, _, reject_two) = pending();
        let (three, fulfil_three, _) = pending();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let first = gate::run(
            async move {
                let a = settled_of(&one).await?;
                log.borrow_mut().push("first, one");
                let b = settled_of(&three).await?;
                log.borrow_mut().push("first, three");
                Ok(JsValue::from(a.as_f64().unwrap() + b.as_f64().unwrap()))
            },
            Gate::Open,
        );
        let log = seen.clone();
        let second = gate::run(
            async move {
                let refused = settled_of(&two).await;
                log.borrow_mut().push("second, two");
                Err(refused.unwrap_err())
            },
            Gate::Open,
        );
        assert!(first.is_instance_of::<Promise>() && second.is_instance_of::<Promise>());
        reject_two.call1(&JsValue::NULL, &"refused".into()).unwrap();
        fulfil_three.call1(&JsValue::NULL, &3.into()).unwrap();
        fulfil_one.call1(&JsValue::NULL, &1.into()).unwrap();
        assert_eq!(
            JsFuture::from(Promise::from(second)).await,
            Err(JsValue::from("refused"))
        );
        assert_eq!(JsFuture::from(Promise::from(first)).await, Ok(4.into()));
        assert_eq!(
            *seen.borrow(),
            ["second, two", "first, one", "first, three"]
        );
    }

    /// An await given up before its promise settles (a request cancelled) leaves nothing behind:
    /// the settlement that comes later wakes nobody, and the next await gets its own outcome.
    #[wasm_bindgen_test]
    async fn an_abandoned_await_leaves_nothing_behind() {
        let (late, fulfil_late, _) = pending();
        drop(settled_of(&late));
        let next = Promise::resolve(&JsValue::from("next"));
        let awaited = settled_of(&next);
        fulfil_late.call1(&JsValue::NULL, &"late".into()).unwrap();
        assert_eq!(awaited.await, Ok(JsValue::from("next")));
        let again = Promise::resolve(&JsValue::from("again"));
        assert_eq!(settled_of(&again).await, Ok(JsValue::from("again")));
    }
}

/// The Worker's bindings, looked up once per isolate: a second lookup reads nothing from `env`,
/// and a binding the Worker does not have stays absent.
mod bindings {
    use session_state::bindings::{binding, namespace};
    use wasm_bindgen::{JsCast as _, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::js_sys::{Function, Object, Reflect};
    use worker::Env;

    /// An `env` whose `TEST_KV` binding counts the times it is read.
    fn counting_env() -> (Env, impl Fn() -> f64) {
        let make = Function::new_no_args(
            "const env = { reads: 0 };
             Object.defineProperty(env, 'TEST_KV', { get() { env.reads += 1; return { kind: 'kv' }; } });
             return env;",
        );
        let env = make.call0(&JsValue::NULL).expect("an env");
        let reads = {
            let env = env.clone();
            move || {
                Reflect::get(&env, &"reads".into())
                    .unwrap()
                    .as_f64()
                    .unwrap()
            }
        };
        (env.unchecked_into(), reads)
    }

    #[wasm_bindgen_test]
    fn a_binding_is_read_from_env_once() {
        let (env, reads) = counting_env();
        let first = binding(&env, "TEST_KV").expect("bound");
        let second = binding(&env, "TEST_KV").expect("still bound");
        assert_eq!(reads(), 1.0);
        assert!(Object::is(&first, &second));
        let kind = Reflect::get(&second, &"kind".into()).unwrap();
        assert_eq!(kind.as_string().as_deref(), Some("kv"));
    }

    #[wasm_bindgen_test]
    fn a_missing_binding_is_absent_and_a_missing_namespace_an_error() {
        let (env, _) = counting_env();
        assert!(binding(&env, "TEST_NOTHING").is_none());
        assert!(binding(&env, "TEST_NOTHING").is_none());
        let Err(err) = namespace(&env, "TEST_NO_OBJECTS") else {
            panic!("a namespace the Worker does not have");
        };
        assert_eq!(err.code(), "internal");
    }
}

mod bodies {
    use session_state::domain::error::Error;
    use session_state::http::{read_all, read_object, Incoming};
    use wasm_bindgen::JsValue;
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::web_sys::{Request, RequestInit};

    /// A request with `body` and no `Content-Length`: nothing declared to refuse it by.
    fn request(body: &str) -> Request {
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(body));
        Request::new_with_str_and_init("https://object/add", &init).expect("a request")
    }

    #[wasm_bindgen_test]
    async fn a_body_sent_to_an_object_is_read_from_its_arrival() {
        let incoming = Incoming::arriving(request(r#"{"a":1}"#));
        assert!(incoming.raw.body_used(), "read before a handler asks");
        assert_eq!(read_all(&incoming).await.ok(), Some(br#"{"a":1}"#.to_vec()));
        let at_the_worker = Incoming::new(request("{}"));
        assert!(
            !at_the_worker.raw.body_used(),
            "the worker reads a body when its handler asks, within the limit"
        );
        let none =
            Incoming::arriving(Request::new_with_str("https://object/get").expect("a request"));
        assert!(!none.raw.body_used(), "no body, nothing read");
        // What the runtime hands an object for a forwarded POST without one (a touch).
        let declared_empty = request("");
        let headers = declared_empty.headers();
        headers.set("content-length", "0").expect("a header");
        let empty = Incoming::arriving(declared_empty);
        assert_eq!(empty.head.content_length.as_deref(), Some("0"));
        assert!(
            !empty.raw.body_used(),
            "a body declared empty is left alone"
        );
        assert_eq!(
            read_all(&empty).await.ok(),
            Some(vec![]),
            "and read when asked"
        );
    }

    #[wasm_bindgen_test]
    async fn a_body_read_from_its_arrival_is_held_to_the_limit() {
        let over = Incoming::arriving(request(r#"{"b":22}"#));
        let refused = read_object(&over, 7).await.map(drop);
        assert!(
            matches!(refused, Err(Error::PayloadTooLarge { limit: 7 })),
            "{refused:?}"
        );
        let at = Incoming::arriving(request(r#"{"b":2}"#));
        assert!(read_object(&at, 7).await.is_ok(), "exactly the limit");
    }
}

mod object_storage {
    use session_state::object_storage::DoStorage;
    use session_state::{ObjectStorage, Value};
    use wasm_bindgen::{JsCast as _, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::js_sys::{Function, JsString, Reflect};
    use worker::{State, Storage};

    /// A storage whose SQL answers the rows of `rows` (JavaScript) to any statement, and keeps
    /// the last statement's parameters in `bound`, as the runtime's would see them.
    fn answering(rows: &str) -> (Storage, JsValue) {
        let make = Function::new_no_args(&format!(
            "const storage = {{ bound: null,
               sql: {{ exec(query, ...params) {{
                 storage.bound = params;
                 if (query === 'fail') throw new Error('no such table');
                 const rows = {rows};
                 return {{ raw: () => rows[Symbol.iterator]() }};
               }} }} }};
             return {{ storage }};"
        ));
        let state = make.call0(&JsValue::NULL).expect("a state");
        let raw = Reflect::get(&state, &"storage".into()).expect("its storage");
        let state = state.unchecked_into::<worker::worker_sys::DurableObjectState>();
        (State::from(state).storage(), raw)
    }

    /// What JavaScript was given, written out by JavaScript.
    fn bound(raw: &JsValue) -> String {
        let describe = Function::new_with_args(
            "storage",
            "return storage.bound.map((v) => v instanceof Uint8Array ? 'bytes ' + [...v].join(',')
               : v === null ? 'null' : typeof v + ' ' + v).join(' | ');",
        );
        let text = describe.call1(&JsValue::NULL, raw).expect("described");
        String::from(text.unchecked_into::<JsString>())
    }

    #[wasm_bindgen_test]
    fn values_cross_to_sql_and_back_as_they_are() {
        let (storage, raw) = answering(
            "[[7, -9007199254740991, 'a:b;c\\nd', null],
              [new Uint8Array([1, 2, 3]).buffer, 'é😀', '', new Uint8Array([])]]",
        );
        let storage = DoStorage::new(storage, raw.clone());
        let rows = storage
            .exec(
                "SELECT",
                vec![
                    Value::Integer(-42),
                    Value::Text("x:1;\n😀".into()),
                    Value::Null,
                    Value::Blob(vec![4, 5]),
                    Value::Text(String::new()),
                ],
            )
            .expect("rows");
        assert_eq!(
            bound(&raw),
            "number -42 | string x:1;\n😀 | null | bytes 4,5 | string "
        );
        assert_eq!(
            rows,
            vec![
                vec![
                    Value::Integer(7),
                    Value::Integer(-9007199254740991),
                    Value::Text("a:b;c\nd".into()),
                    Value::Null,
                ],
                vec![
                    Value::Blob(vec![1, 2, 3]),
                    Value::Text("é😀".into()),
                    Value::Text(String::new()),
                    Value::Blob(vec![]),
                ],
            ]
        );
        let (empty, raw) = answering("[]");
        let empty = DoStorage::new(empty, raw);
        let rows = empty.exec("SELECT", vec![]).expect("no rows");
        assert_eq!(rows, Vec::<Vec<Value>>::new());
    }

    #[wasm_bindgen_test]
    fn a_statement_that_throws_is_the_store_unavailable() {
        let (storage, raw) = answering("[]");
        let storage = DoStorage::new(storage, raw);
        let err = storage.exec("fail", vec![]).expect_err("thrown");
        assert_eq!(err.code(), "store_unavailable");
    }
}
