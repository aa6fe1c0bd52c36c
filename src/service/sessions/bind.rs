//! Binding a session to a device key (W3C DBSC), and refreshing a bound session with the
//! device's proof: see `domain::binding` for the parts, docs/dbsc.md for the protocol.
//!
//! Registration (`POST /bind/:id`) checks the proof against a challenge of the session's id
//! and the key the proof carries, writes the binding's pointer (a record under a fresh binding
//! identifier, sealed under it, naming the session's next id and keeping the key), then moves
//! the session to that id, bound, as a renewal does: the id the browser held before reaches it
//! for the grace window, then is reuse. A refresh (`POST /binding/:binding/refresh`) finds the
//! session through the pointer, checks the proof against a challenge of its current id and the
//! kept key, points the pointer at a new id and moves the session there the same way.
//!
//! Each challenge is spent by the move it allows: it was minted for an id the move leaves. In
//! strong mode a binding's requests run one at a time in the pointer's object, so of two
//! refreshes with one proof the second finds the pointer moved on and is refused. On KV, two
//! that read the pointer before either write lands (within KV's consistency window) both pass,
//! and converge on one new id (the renewal's successor derived from the record read).

use crate::domain::binding::{
    challenge_life, check_challenge, mint_challenge, Binding, Pointer, Proof, Purpose, Stage,
    Verify,
};
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::event::Kind;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::domain::time::Millis;
use crate::store::{Expect, Outcome, SessionStore, Stored, SubjectIndex};

use super::{lost_races, Leaving, Session, Sessions};

/// The most links a refresh follows from the id its pointer names to the session's current id
/// (a rotation or reauthentication since the last refresh adds one each).
const MAX_LINKS: usize = 8;

/// What a registration or refresh answers: the session's new id, its binding identifier (the
/// browser's `session_identifier`) and its lifecycle.
#[derive(Debug)]
pub struct BoundSession {
    pub id: SessionId,
    pub binding: SessionId,
    pub meta: Meta,
}

/// A binding's pointer as read, with its lifecycle, and the session it leads to now.
struct Found {
    pointer: Pointer,
    pointer_meta: Meta,
    id: SessionId,
    session: Session,
}

impl<'s, S: SessionStore, I: SubjectIndex> Sessions<'s, S, I> {
    /// A challenge for binding the session `id` to a device key: `409 session_bound` when it
    /// already is.
    pub async fn registration_challenge(
        &self,
        id: &SessionId,
        now: Millis,
    ) -> Result<String, Error> {
        self.unbound(id, now).await?;
        Ok(mint_challenge(id, Purpose::Register, now))
    }

    /// Binds the session `id` to the key of `proof` (a `Secure-Session-Response`), under the
    /// binding identifier `binding`, moving it to `new_id` (see the module's doc).
    pub async fn bind(
        &self,
        id: &SessionId,
        proof: &str,
        ids: (SessionId, SessionId),
        verifier: &impl Verify,
        now: Millis,
    ) -> Result<BoundSession, Error> {
        let (new_id, binding) = ids;
        let mut current = self.unbound(id, now).await?;
        let proof = Proof::parse(proof, Stage::Registration)?;
        let life = challenge_life(self.renewal.bound_id_ms);
        if !check_challenge(&proof.jti, id, Purpose::Register, now, life) {
            return Err(Error::ChallengeRefused);
        }
        let jwk = proof.jwk.ok_or(Error::ProofRefused(
            "a registration proof must carry its jwk",
        ))?;
        let signed = proof.signed.as_bytes();
        if !verifier
            .verify(proof.alg, &jwk, signed, &proof.signature)
            .await?
        {
            return Err(Error::ProofRefused(
                "the signature does not verify with the jwk",
            ));
        }
        let new_id = self.store.successor(id, new_id);
        current.meta.binding = Some(Binding::Bound {
            alg: proof.alg,
            key: jwk.thumbprint(),
            since: now,
        });
        let pointer = Pointer {
            current: new_id,
            alg: proof.alg,
            jwk,
        };
        let pointer_meta = Meta {
            expires_at: current.meta.latest_end(self.policy),
            binding: Some(Binding::Pointer),
            ..Meta::new(now, None, self.policy)
        };
        let json = pointer.to_json();
        let saved = self.store.save(
            &binding,
            json.as_bytes().into(),
            &pointer_meta,
            Expect::Absent,
            None,
        );
        if saved.await? == Outcome::Conflict {
            return Err(Error::Internal("a binding identifier is taken".into()));
        }
        let kind = Kind::Bound {
            from: Handle::of(id),
        };
        match self
            .move_to(id, new_id, &current, Leaving::Proven(kind), now)
            .await
        {
            Ok(meta) => Ok(BoundSession {
                id: new_id,
                binding,
                meta,
            }),
            Err(err) => Err(self.undo("binding", &binding, &binding, err).await),
        }
    }

    /// A challenge for refreshing the session bound under `binding`.
    pub async fn refresh_challenge(
        &self,
        binding: &SessionId,
        now: Millis,
    ) -> Result<String, Error> {
        let found = self.bound_by(binding, now).await?;
        Ok(mint_challenge(&found.id, Purpose::Refresh, now))
    }

    /// Moves the session bound under `binding` to `new_id`, given the device's `proof` (see
    /// the module's doc).
    pub async fn refresh(
        &self,
        binding: &SessionId,
        proof: &str,
        new_id: SessionId,
        verifier: &impl Verify,
        now: Millis,
    ) -> Result<BoundSession, Error> {
        let proof = Proof::parse(proof, Stage::Refresh)?;
        let found = self.bound_by(binding, now).await?;
        if proof.alg != found.pointer.alg {
            return Err(Error::ProofRefused(
                "the proof's alg is not the bound key's",
            ));
        }
        let life = challenge_life(self.renewal.bound_id_ms);
        if !check_challenge(&proof.jti, &found.id, Purpose::Refresh, now, life) {
            return Err(Error::ChallengeRefused);
        }
        let (jwk, signed) = (&found.pointer.jwk, proof.signed.as_bytes());
        if !verifier
            .verify(proof.alg, jwk, signed, &proof.signature)
            .await?
        {
            return Err(Error::ProofRefused(
                "the signature does not verify with the bound key",
            ));
        }
        let id = found.id;
        let new_id = self.store.successor(&id, new_id);
        // The pointer first: it names the new id before the id exists, and a second refresh
        // with this proof then finds the challenge minted for an id left behind.
        let version = found.pointer_meta.version;
        let moved = Meta {
            updated_at: now,
            version: version + 1,
            ..found.pointer_meta
        };
        let next = Pointer {
            current: new_id,
            ..found.pointer.clone()
        };
        let json = next.to_json();
        let saved = self.store.save(
            binding,
            json.as_bytes().into(),
            &moved,
            Expect::Version(version),
            None,
        );
        if saved.await? == Outcome::Conflict {
            return Err(lost_races());
        }
        let kind = Kind::Refreshed {
            from: Handle::of(&id),
        };
        match self
            .proven()
            .move_to(&id, new_id, &found.session, Leaving::Proven(kind), now)
            .await
        {
            Ok(meta) => Ok(BoundSession {
                id: new_id,
                binding: *binding,
                meta,
            }),
            Err(err) => {
                // Back to the id the session is still at; should that fail too, the next
                // refresh follows the retirement chain from wherever the pointer names.
                let back = Meta {
                    version: version + 2,
                    ..moved
                };
                let json = found.pointer.to_json();
                let restore = self.store.save(
                    binding,
                    json.as_bytes().into(),
                    &back,
                    Expect::Version(version + 1),
                    None,
                );
                let _ = restore.await;
                Err(err)
            }
        }
    }

    /// The live session stored under `id` itself (not one an id renewed away reaches: a key is
    /// bound to the id the browser holds), unbound.
    async fn unbound(&self, id: &SessionId, now: Millis) -> Result<Session, Error> {
        let Some(Stored::Session(record)) = self.store.load(id).await? else {
            return Err(Error::SessionNotFound);
        };
        let session = self.live_session(id, record, now).await?;
        match session.meta.binding {
            None => Ok(session),
            Some(_) => Err(Error::SessionBound),
        }
    }

    /// The pointer under `binding`, and the live session it leads to: the id it names, or
    /// that id's successors where a rotation moved the session since (at most [`MAX_LINKS`]).
    /// The session must be bound to the pointer's key.
    async fn bound_by(&self, binding: &SessionId, now: Millis) -> Result<Found, Error> {
        let Some(Stored::Session(record)) = self.store.load(binding).await? else {
            return Err(Error::SessionNotFound);
        };
        let pointer_meta = record
            .meta
            .filter(|meta| meta.binding == Some(Binding::Pointer) && now < meta.expires_at)
            .ok_or(Error::SessionNotFound)?;
        let pointer = Pointer::from_json(&record.data).ok_or_else(|| {
            Error::Unreadable(format!(
                "integrity: binding {} holds no pointer",
                binding.short()
            ))
        })?;
        let proven = self.proven();
        let mut id = pointer.current;
        for _ in 0..MAX_LINKS {
            let session = match self.store.load(&id).await? {
                Some(Stored::Session(record)) => proven.live_session(&id, record, now).await?,
                Some(Stored::Retired(retirement, _)) => {
                    id = retirement.successor;
                    continue;
                }
                None => return Err(Error::SessionNotFound),
            };
            let key = pointer.jwk.thumbprint();
            return match session.meta.binding {
                Some(Binding::Bound {
                    alg, key: bound, ..
                }) if alg == pointer.alg && bound == key => Ok(Found {
                    pointer,
                    pointer_meta,
                    id,
                    session,
                }),
                _ => Err(Error::Unreadable(format!(
                    "integrity: binding {} names a session not bound to its key",
                    binding.short()
                ))),
            };
        }
        Err(Error::SessionNotFound)
    }
}
