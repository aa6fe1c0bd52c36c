//! `/old`: an object of the earlier strong mode (named by the bare id, holding the id and the
//! data in the clear), asked by the session's object of this version for its session (`GET`) and
//! then emptied (`DELETE`). The client is [`Peers`]' [`LegacyObjects`]; the server is [`serve`].

use super::store::{meta_of, Peers, META};
use super::{object_failure, send, unexpected, Answer, Call};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::time::Millis;
use crate::store::durable::legacy::{self, Held};
use crate::store::durable::sessions::LegacyObjects;
use crate::store::durable::ObjectStorage;
use crate::store::Record;

/// The path on the wire keeps its first name, so that objects of two versions understand each
/// other while a deploy rolls out.
pub const PATH: &str = "/old";
/// On the answer: its session came from KV, and the copy there may remain.
pub(super) const KV_COPY: &str = "session-state-kv-copy";
/// What an object of the earlier strong mode answers of a session that ended recently (KV may
/// still serve a stale copy of it).
const ENDED: u16 = 410;

impl LegacyObjects for Peers {
    async fn held(&self, id: &SessionId) -> Result<Held, Error> {
        let name = id.to_string();
        let mut response = send(self.namespace(), &name, PATH, "GET", &[], None).await?;
        match response.status_code() {
            200 => {
                let meta = meta_of(&response);
                let kv_copy = response.headers().get(KV_COPY).ok().flatten().is_some();
                let data = response.text().await.map_err(object_failure)?;
                let record = Record { data, meta };
                Ok(Held::Live { record, kv_copy })
            }
            ENDED => Ok(Held::Ended),
            404 => Ok(Held::Nothing),
            status => Err(unexpected("an object of the earlier version", status)),
        }
    }

    async fn empty(&self, id: &SessionId) -> Result<(), Error> {
        let name = id.to_string();
        let response = send(self.namespace(), &name, PATH, "DELETE", &[], None).await?;
        match response.status_code() {
            204 => Ok(()),
            status => Err(unexpected("an object of the earlier version", status)),
        }
    }
}

/// The server half, in an object of the earlier strong mode.
pub async fn serve(
    call: &Call<'_>,
    storage: &impl ObjectStorage,
    now: Millis,
) -> Result<Answer, Error> {
    match call.method {
        "GET" => Ok(match legacy::held(storage, now)? {
            Held::Live { record, kv_copy } => {
                let mut answer = Answer::new(200, record.data.into_bytes());
                if let Some(meta) = record.meta {
                    answer = answer.header(META, meta.to_json());
                }
                if kv_copy {
                    answer = answer.header(KV_COPY, "1".into());
                }
                answer
            }
            Held::Ended => Answer::new(ENDED, b"{}".to_vec()),
            Held::Nothing => Answer::new(404, b"{}".to_vec()),
        }),
        "DELETE" => {
            storage.delete_all().await?;
            Ok(Answer::done())
        }
        _ => Err(Error::NotFound),
    }
}
