//! The last authentication on both backends' storage: recorded at creation, demanded by a
//! request (refused with nothing changed), recorded again by a reauthentication that rotates the
//! id, kept by every other write, and shown in a subject's listing.

use crate::domain::auth::{Auth, Demand, Level};
use crate::domain::error::Error;
use crate::domain::merge::Merge;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::service::sessions::{NewSession, Sessions};
use crate::service::subjects::Subjects;
use crate::service::tests::fixtures::{ada, data, id};
use crate::store::kv::KvIndex;
use crate::store::memory::{run, sealed, MemoryKv};
use crate::store::{SessionStore, SubjectIndex};

fn level(n: u8) -> Level {
    Level::of(n).unwrap()
}

fn demand(max_age: Option<&str>, min_level: Option<&str>) -> Demand {
    Demand::parse(max_age, min_level).unwrap()
}

fn patch() -> crate::domain::json::JsonObject {
    crate::domain::json::JsonObject::from_bytes(br#"{"changed":true}"#.to_vec()).unwrap()
}

fn refused(found: Result<impl std::fmt::Debug, Error>) -> (u64, u8) {
    match found {
        Err(Error::ReauthenticationRequired { age, level, .. }) => (age, level),
        other => panic!("not refused: {other:?}"),
    }
}

/// What the rules say, on any store: the demand refuses before anything is written, and a
/// reauthentication moves the session to a new id that meets it.
fn the_rules_hold<S: SessionStore, I: SubjectIndex>(store: &S, index: &I) {
    let sessions = Sessions::new(store, POLICY).indexed(index, 10);
    let new = NewSession {
        id: id(1),
        data: &data(),
        ttl: None,
        level: level(2),
        subject: Some(ada()),
        device: None,
    };
    let created = run(sessions.create_from(new, T0));
    assert_eq!(
        created.unwrap().auth,
        Auth {
            at: T0,
            level: level(2)
        }
    );
    let later = T0 + 600 * S;
    let fresh = sessions.demanding(demand(Some("300"), None));
    assert_eq!(refused(run(fresh.get(&id(1), later))), (600, 2));
    assert_eq!(refused(run(fresh.touch(&id(1), later))), (600, 2));
    let (one, change) = (id(1), patch());
    let merged = fresh.merge(&one, &change, Merge::Shallow, None, later);
    assert_eq!(refused(run(merged)), (600, 2));
    assert_eq!(refused(run(fresh.rotate(&id(1), id(9), later))), (600, 2));
    assert_eq!(refused(run(fresh.renew(&id(1), id(9), later))), (600, 2));
    let unchanged = run(Sessions::new(store, POLICY).get(&id(1), later)).unwrap();
    assert_eq!(
        (unchanged.data.as_str(), unchanged.meta.version),
        (r#"{"user":"ada"}"#, 1)
    );
    assert_eq!(unchanged.meta.updated_at, T0, "not renewed either");
    assert!(run(store.load(&id(9))).unwrap().is_none(), "no new id");
    let stronger = sessions.demanding(demand(None, Some("3")));
    assert_eq!(refused(run(stronger.get(&id(1), T0 + S))), (1, 2));
    assert!(run(sessions
        .demanding(demand(Some("600"), Some("2")))
        .get(&id(1), later))
    .is_ok());

    let meta = run(fresh.reauthenticate(id(1), id(2), level(3), later)).unwrap();
    assert_eq!(
        meta.auth,
        Auth {
            at: later,
            level: level(3)
        }
    );
    assert_eq!(meta.created_at, T0, "no longer a lifetime");
    assert_eq!(
        run(sessions.get(&id(1), later)).unwrap_err().code(),
        "session_not_found",
        "the old id ends at once"
    );
    let demanding = sessions.demanding(demand(Some("300"), Some("3")));
    let read = run(demanding.get(&id(2), later + 300 * S)).unwrap();
    assert_eq!(
        read.meta.auth,
        Auth {
            at: later,
            level: level(3)
        }
    );
    run(sessions.merge(&id(2), &patch(), Merge::Shallow, None, later + 400 * S)).unwrap();
    run(sessions.touch(&id(2), later + 500 * S)).unwrap();
    let renewed = run(sessions.renew(&id(2), id(3), later + 501 * S)).unwrap();
    assert_eq!(
        renewed.meta.auth, meta.auth,
        "writes, touches and renewals keep it"
    );
    let level_one = run(sessions.reauthenticate(renewed.id, id(4), Level::ONE, later + 502 * S));
    assert_eq!(
        level_one.unwrap().auth.level,
        Level::ONE,
        "what the caller says, not more"
    );

    let listed = run(Subjects::new(index, store, POLICY).live(&ada(), later + 503 * S)).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].activity.auth,
        Auth {
            at: later + 502 * S,
            level: Level::ONE
        }
    );
}

#[test]
fn the_last_authentication_is_demanded_and_renewed_on_kv() {
    let kv = MemoryKv::default();
    let (store, index) = (sealed(&kv), KvIndex::new(&kv, true));
    the_rules_hold(&store, &index);
}

#[test]
#[cfg(not(target_arch = "wasm32"))]
fn the_last_authentication_is_demanded_and_renewed_in_strong_mode() {
    use crate::store::durable::index::SqlIndex;
    use crate::store::memory::sqlite::SqliteStorage;
    use crate::store::memory::StrictSessions;
    let (store, index) = (
        StrictSessions::default(),
        SqlIndex(SqliteStorage::default()),
    );
    the_rules_hold(&store, &index);
}

/// A session of the old worker has no lifecycle at all: when its user authenticated is
/// unknown, and no demand of freshness accepts it until a reauthentication.
#[test]
fn a_session_of_the_old_worker_is_never_fresh() {
    let kv = MemoryKv::default();
    kv.insert_legacy(&id(1).to_string(), r#"{"user":"ada"}"#);
    let store = sealed(&kv);
    let sessions = Sessions::new(&store, POLICY);
    let read = run(sessions.get(&id(1), T0)).unwrap();
    assert_eq!(read.meta.auth, Auth::UNKNOWN);
    let fresh = sessions.demanding(demand(Some("31622400"), None));
    assert!(matches!(
        run(fresh.get(&id(1), T0)),
        Err(Error::ReauthenticationRequired {
            authenticated_at: 0,
            ..
        })
    ));
    assert!(run(sessions.demanding(demand(None, Some("1"))).get(&id(1), T0)).is_ok());
    let meta = run(sessions.reauthenticate(id(1), id(2), level(2), T0 + S)).unwrap();
    assert!(run(fresh.get(&id(2), T0 + 2 * S)).is_ok());
    assert_eq!(meta.auth.at, T0 + S);
}
