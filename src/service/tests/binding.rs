//! Device binding on KV's storage (strong mode's refresh, which retires the old id through its
//! own object, is driven end to end in `tests/e2e/binding.test.mjs`): registration and refresh
//! move the session, each challenge is spent by its move, a bound id past its life is reuse, and
//! the binding's pointer is no session. Signatures here are a stand-in (a digest of the key and
//! the signed bytes): the real ones are WebCrypto's, checked in the end-to-end tests.

use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::domain::binding::{Alg, Binding, Jwk, Verify};
use crate::domain::digest::sha256;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::service::sessions::{BoundSession, Sessions};
use crate::service::tests::fixtures::{ada, data, id};
use crate::store::events::Journal;
use crate::store::kv::{KvIndex, KvSessions};
use crate::store::memory::{run, MemoryKv, SoftAead};
use crate::store::SubjectIndex;

/// Accepts a signature that is the digest of the key and the signed bytes.
struct StandIn;

fn signature(jwk: &str, signed: &[u8]) -> Vec<u8> {
    sha256(&[jwk.as_bytes(), signed].concat()).to_vec()
}

impl Verify for StandIn {
    async fn verify(&self, _alg: Alg, jwk: &Jwk, signed: &[u8], sig: &[u8]) -> Result<bool, Error> {
        Ok(sig == signature(jwk.as_str(), signed))
    }
}

/// A device's key, `n` telling devices apart.
struct Device(u8);

impl Device {
    fn jwk(&self) -> String {
        let (x, y) = ([self.0; 32], [self.0 ^ 0xff; 32]);
        format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        )
    }

    /// A proof for `challenge`, with the key at registration.
    fn proof(&self, challenge: &str, register: bool) -> String {
        self.proof_signed_by(challenge, register, self)
    }

    /// The same, signed with `signer`'s key.
    fn proof_signed_by(&self, challenge: &str, register: bool, signer: &Device) -> String {
        let jwk = if register {
            format!(r#","jwk":{}"#, self.jwk())
        } else {
            String::new()
        };
        let header = format!(r#"{{"typ":"dbsc+jwt","alg":"ES256"{jwk}}}"#);
        let claims = format!(r#"{{"jti":"{challenge}"}}"#);
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = URL_SAFE_NO_PAD.encode(signature(&signer.jwk(), signed.as_bytes()));
        format!("\"{signed}.{sig}\"")
    }
}

fn store<'k>(kv: &'k MemoryKv, journal: &Rc<Journal>) -> KvSessions<&'k MemoryKv, SoftAead> {
    KvSessions::new(kv, SoftAead, false).with_events(Some(journal.clone()))
}

fn binding_id() -> SessionId {
    SessionId::token_from_random_bytes([42; 32])
}

fn types(journal: &Journal) -> Vec<String> {
    let events = journal.take();
    let types = events.iter().map(|event| {
        let value: serde_json::Value = serde_json::from_str(event.as_str()).unwrap();
        value["type"].as_str().unwrap_or_default().to_owned()
    });
    types.collect()
}

/// Creates `id(1)` (for ada, where there is an index to list her in) and binds it to `device`
/// at `T0`.
fn bound<S: crate::store::SessionStore, I: crate::store::SubjectIndex>(
    sessions: Sessions<'_, S, I>,
    subject: Option<crate::domain::subject::Subject>,
    device: &Device,
) -> BoundSession {
    run(sessions.create(id(1), &data(), None, subject, None, T0)).unwrap();
    let challenge = run(sessions.registration_challenge(&id(1), T0)).unwrap();
    let proof = device.proof(&challenge, true);
    let ids = (id(2), binding_id());
    run(sessions.bind(&id(1), &proof, ids, &StandIn, T0)).unwrap()
}

#[test]
fn a_session_binds_and_refreshes_to_new_ids_with_its_device_proof() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let (store, index) = (store(&kv, &journal), KvIndex::new(&kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    let device = Device(1);
    let first = bound(sessions, Some(ada()), &device);
    assert_ne!(first.id, id(1));
    assert_eq!(first.binding, binding_id());
    let thumbprint = Jwk::from_kept(&device.jwk()).unwrap().thumbprint();
    let expected = Binding::Bound {
        alg: Alg::Es256,
        key: thumbprint,
        since: T0,
    };
    assert_eq!(first.meta.binding, Some(expected));
    assert_eq!(
        run(sessions.get(&first.id, T0 + S)).unwrap().data,
        r#"{"user":"ada"}"#
    );
    // The id it was bound from reaches it for the grace window, as a renewed one does.
    assert!(run(sessions.get(&id(1), T0 + S)).is_ok());
    assert!(matches!(
        run(sessions.renew(&first.id, id(3), T0 + S)),
        Err(Error::ProofRequired)
    ));
    assert!(matches!(
        run(sessions.registration_challenge(&first.id, T0 + S)),
        Err(Error::SessionBound)
    ));

    // Refreshed after its id's life: what a refresh is for.
    let at = T0 + 601 * S;
    let challenge = run(sessions.refresh_challenge(&binding_id(), at)).unwrap();
    let proof = device.proof(&challenge, false);
    let next = run(sessions.refresh(&binding_id(), &proof, id(4), &StandIn, at)).unwrap();
    assert_ne!(next.id, first.id);
    assert!(matches!(next.meta.binding, Some(Binding::Bound { since, .. }) if since == at));
    assert!(run(sessions.get(&next.id, at + S)).is_ok());
    // Its challenge was spent by the move: the same proof again is refused.
    let again = run(sessions.refresh(&binding_id(), &proof, id(5), &StandIn, at + S));
    assert!(matches!(again, Err(Error::ChallengeRefused)), "{again:?}");
    assert_eq!(types(&journal), ["created", "bound", "refreshed"]);
    assert_eq!(run(index.members(&ada())).unwrap().len(), 1, "listed once");
}

#[test]
fn refused_proofs_change_nothing() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    let challenge = run(sessions.registration_challenge(&id(1), T0)).unwrap();
    let ids = (id(2), binding_id());
    let bind = |proof: &str, now| run(sessions.bind(&id(1), proof, ids, &StandIn, now));
    // Signed by another key than the one it carries.
    let forged = Device(1).proof_signed_by(&challenge, true, &Device(2));
    assert!(matches!(bind(&forged, T0), Err(Error::ProofRefused(_))));
    assert!(matches!(
        bind(&Device(1).proof(&challenge, false), T0),
        Err(Error::ProofRefused(_))
    ));
    let later = T0 + 300 * S;
    let expired = bind(&Device(1).proof(&challenge, true), later);
    assert!(
        matches!(expired, Err(Error::ChallengeRefused)),
        "{expired:?}"
    );
    run(sessions.create(id(3), &data(), None, None, None, T0)).unwrap();
    let others = run(sessions.registration_challenge(&id(3), T0)).unwrap();
    assert!(matches!(
        bind(&Device(1).proof(&others, true), T0),
        Err(Error::ChallengeRefused)
    ));
    let unbound = run(sessions.get(&id(1), T0 + S)).unwrap();
    assert_eq!(unbound.meta.binding, None);
    assert!(bind(&Device(1).proof(&challenge, true), T0 + S).is_ok());
    // Spent: the id it was minted for has moved on.
    assert!(bind(&Device(1).proof(&challenge, true), T0 + 2 * S).is_err());
}

#[test]
fn a_bound_id_presented_after_its_life_is_reuse() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    let first = bound(sessions, None, &Device(1));
    assert!(run(sessions.get(&first.id, T0 + 599 * S)).is_ok());
    let err = run(sessions.get(&first.id, T0 + 600 * S)).unwrap_err();
    assert!(matches!(err, Error::Reused(_)), "{err:?}");
    // The session ended: the device's refresh finds nothing either.
    let after = run(sessions.refresh_challenge(&binding_id(), T0 + 601 * S));
    assert!(matches!(after, Err(Error::SessionNotFound)));
    assert_eq!(types(&journal), ["created", "bound", "revoked"]);
}

#[test]
fn a_refresh_follows_the_session_a_step_up_moved() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    let device = Device(1);
    let first = bound(sessions, None, &device);
    let level = crate::domain::auth::Level::of(2).unwrap();
    let moved = run(sessions.reauthenticate(first.id, id(6), level, T0 + S)).unwrap();
    assert!(matches!(moved.binding, Some(Binding::Bound { since, .. }) if since == T0 + S));
    let challenge = run(sessions.refresh_challenge(&binding_id(), T0 + 2 * S)).unwrap();
    let proof = device.proof(&challenge, false);
    let next = run(sessions.refresh(&binding_id(), &proof, id(7), &StandIn, T0 + 2 * S));
    assert!(run(sessions.get(&next.unwrap().id, T0 + 3 * S)).is_ok());
    // The id the step-up left is watched: presented again, it is reuse.
    assert!(matches!(
        run(sessions.get(&first.id, T0 + 4 * S)),
        Err(Error::Reused(_))
    ));
}

#[test]
fn a_binding_identifier_reaches_no_session_route() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    let device = Device(1);
    bound(sessions, None, &device);
    assert!(matches!(
        run(sessions.get(&binding_id(), T0 + S)),
        Err(Error::SessionNotFound)
    ));
    let renew = run(sessions.renew(&binding_id(), id(8), T0 + S));
    assert!(matches!(renew, Err(Error::SessionNotFound)));
    run(sessions.delete(&binding_id(), None, T0 + S)).unwrap();
    let challenge = run(sessions.refresh_challenge(&binding_id(), T0 + 2 * S)).unwrap();
    let proof = device.proof(&challenge, false);
    assert!(run(sessions.refresh(&binding_id(), &proof, id(9), &StandIn, T0 + 2 * S)).is_ok());
}
