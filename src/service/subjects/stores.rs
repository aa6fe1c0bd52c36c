//! What the subject routes work on, one type for both backends: the index and the sessions on
//! KV in the worker, or in the subject's object reaching each session through its own object.
//! Each operation is [`Subjects`]', on whichever pair the request has.

use crate::domain::derive::{DeviceKey, Handle};
use crate::domain::error::Error;
use crate::domain::session::Policy;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::service::subjects::{Listing, Subjects};
use crate::store::durable::index::SqlIndex;
use crate::store::durable::protocol::store::Peers;
use crate::store::durable::storage::DoStorage;
use crate::store::kv::{Kv, KvIndex, KvSessions};

/// What the subject routes work on: the index and the sessions, on KV in the worker, or in the
/// subject's object reaching each session through its own object.
pub enum SubjectStores {
    Kv(KvIndex<Kv>, KvSessions<Kv>),
    Durable(SqlIndex<DoStorage>, Peers),
}

impl SubjectStores {
    pub async fn listing(
        &self,
        subject: &Subject,
        policy: Policy,
        key: &DeviceKey,
        now: Millis,
    ) -> Result<Listing, Error> {
        match self {
            SubjectStores::Kv(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .listing(subject, key, now)
                    .await
            }
            SubjectStores::Durable(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .listing(subject, key, now)
                    .await
            }
        }
    }

    pub async fn revoke(
        &self,
        subject: &Subject,
        policy: Policy,
        except: Option<Handle>,
        before: Option<Millis>,
        now: Millis,
    ) -> Result<usize, Error> {
        match self {
            SubjectStores::Kv(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke(subject, except, before, now)
                    .await
            }
            SubjectStores::Durable(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke(subject, except, before, now)
                    .await
            }
        }
    }

    pub async fn revoke_one(
        &self,
        subject: &Subject,
        policy: Policy,
        handle: &Handle,
        now: Millis,
    ) -> Result<(), Error> {
        match self {
            SubjectStores::Kv(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke_one(subject, handle, now)
                    .await
            }
            SubjectStores::Durable(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke_one(subject, handle, now)
                    .await
            }
        }
    }
}
