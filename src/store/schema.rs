//! Every name and shape the stores write, in one place: the KV key prefixes and the Durable
//! Objects' SQL tables, those of earlier versions included (they are still read). The modules
//! that read and write them import them from here; `docs/storage.md` describes them, and the
//! test below holds the page to this module, to the derivation labels ([`crate::domain::derive`],
//! [`crate::domain::event`]) and to the sealed layouts ([`super::seal`]).

//!
//! A session's own key, `s1:` and its storage key in hex, is [`StorageKey::name`]: the domain
//! makes it, since strong mode names objects with it too.
//!
//! [`StorageKey::name`]: crate::domain::derive::StorageKey::name

use crate::domain::subject::Subject;

/// KV: a subject's index entries, `sub:<subject hash>:<handle>`.
pub const INDEX_PREFIX: &str = "sub:";

/// KV: the permission cache, `cache:<key as given>`.
pub const CACHE_PREFIX: &str = "cache:";

/// Where the index entries of `subject` start.
pub fn index_prefix(subject: &Subject) -> String {
    format!("{INDEX_PREFIX}{}:", subject.hex())
}

/// A session's object: its one row. `key` and `handle` are there for requests and the alarm
/// that name no id (the alarm's `expired` event names the session by its handle).
pub const RECORD_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS record (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    key TEXT NOT NULL,
    sealed BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    ttl INTEGER,
    subject TEXT,
    kv_deleted_at INTEGER,
    handle TEXT,
    auth_at INTEGER,
    auth_level INTEGER,
    binding TEXT
)";

/// What a read of the row selects, in the order [`super::durable::record::parse_row`] reads.
pub const RECORD_COLUMNS: &str = "sealed, created_at, updated_at, expires_at, version, ttl, \
     subject, kv_deleted_at, handle, auth_at, auth_level, binding";

/// What a write of the row sets, in the order of [`super::durable::record::row_params`].
pub const RECORD_WRITTEN: [&str; 12] = [
    "handle",
    "key",
    "sealed",
    "created_at",
    "updated_at",
    "expires_at",
    "version",
    "ttl",
    "subject",
    "auth_at",
    "auth_level",
    "binding",
];

/// What a `record` table of an earlier version lacks, added on sight: each column, after the
/// one it is known by (`handle` came a version before the authentication, `binding` after it).
pub const RECORD_NEW_COLUMNS: [(&str, &str); 4] = [
    ("handle", "ALTER TABLE record ADD COLUMN handle TEXT"),
    ("auth_at", "ALTER TABLE record ADD COLUMN auth_at INTEGER"),
    (
        "auth_level",
        "ALTER TABLE record ADD COLUMN auth_level INTEGER",
    ),
    ("binding", "ALTER TABLE record ADD COLUMN binding TEXT"),
];

/// A session's object: lifecycle events committed with the change they report, until sent.
pub const OUTBOX_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due INTEGER NOT NULL
)";

/// A subject's object: one row per session listed.
pub const INDEX_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS entry (
    handle TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL,
    updated_at INTEGER,
    expires_at INTEGER,
    device BLOB,
    auth_at INTEGER,
    auth_level INTEGER,
    moved_from TEXT,
    bound TEXT
)";

/// The lineages a revocation ended in a subject's index: the handles it took out, each kept
/// until its session's latest end, so that no session moves from one of them into a new entry
/// (a renewal, rotation or reauthentication that raced the revocation).
pub const ENDED_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS ended (
    handle TEXT PRIMARY KEY,
    until INTEGER NOT NULL
)";

/// What a table `entry` of an earlier version (handle, key, creation, end; then the lifecycle
/// and the device) lacks, added on sight, each column after the one it is known by. Its rows
/// get the lifecycle and the authentication at their next check, and no device (none was
/// given then).
pub const INDEX_NEW_COLUMNS: [(&str, &str); 7] = [
    (
        "updated_at",
        "ALTER TABLE entry ADD COLUMN updated_at INTEGER",
    ),
    (
        "expires_at",
        "ALTER TABLE entry ADD COLUMN expires_at INTEGER",
    ),
    ("device", "ALTER TABLE entry ADD COLUMN device BLOB"),
    ("auth_at", "ALTER TABLE entry ADD COLUMN auth_at INTEGER"),
    (
        "auth_level",
        "ALTER TABLE entry ADD COLUMN auth_level INTEGER",
    ),
    ("moved_from", "ALTER TABLE entry ADD COLUMN moved_from TEXT"),
    ("bound", "ALTER TABLE entry ADD COLUMN bound TEXT"),
];

/// The tables of earlier versions below are read, never created: tests seed them.
///
/// A session's object of the earlier strong mode, named by the bare id: read, moved under the
/// storage key, emptied.
#[cfg(test)]
pub const LEGACY_SESSION_SCHEMA: &str = "CREATE TABLE session (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    id TEXT NOT NULL,
    data TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    ttl INTEGER,
    from_kv INTEGER NOT NULL DEFAULT 0,
    kv_deleted_at INTEGER,
    subject TEXT
)";

/// What a read of that row selects.
pub const LEGACY_SESSION_COLUMNS: &str =
    "id, data, created_at, updated_at, expires_at, version, ttl, from_kv, kv_deleted_at, subject";

/// A subject's object of the version before device info: given its columns on sight.
#[cfg(test)]
pub const LEGACY_ENTRY_SCHEMA: &str = "CREATE TABLE entry (
    handle TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL
)";

/// A subject's object of the earlier strong mode, listing ids: read until each session moved,
/// then dropped with its last row.
#[cfg(test)]
pub const LEGACY_MEMBER_SCHEMA: &str = "CREATE TABLE member (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL
)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::derive::{KEY_PREFIX as SESSION_PREFIX, LABELS};
    use crate::store::seal;

    const PAGE: &str = include_str!("../../docs/storage.md");

    /// Runs of whitespace as one space: SQL reads the same however it is laid out.
    fn squeezed(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// How the page writes a label: in a code span, a NUL as `\0`.
    fn shown(label: &[u8]) -> String {
        format!("`{}`", String::from_utf8_lossy(label).replace('\0', "\\0"))
    }

    #[test]
    fn the_page_has_every_table_as_the_code_creates_it() {
        let page = squeezed(PAGE);
        let tables = [
            RECORD_SCHEMA,
            OUTBOX_SCHEMA,
            INDEX_SCHEMA,
            ENDED_SCHEMA,
            LEGACY_SESSION_SCHEMA,
            LEGACY_ENTRY_SCHEMA,
            LEGACY_MEMBER_SCHEMA,
        ];
        let added = RECORD_NEW_COLUMNS.into_iter().chain(INDEX_NEW_COLUMNS);
        for sql in tables.into_iter().chain(added.map(|(_, sql)| sql)) {
            assert!(
                page.contains(&squeezed(sql)),
                "docs/storage.md lacks:\n{sql}"
            );
        }
        let written = RECORD_WRITTEN
            .iter()
            .all(|c| RECORD_COLUMNS.contains(c) || *c == "key");
        assert!(
            written,
            "every column written is read back, but the key (read by the alarm)"
        );
    }

    #[test]
    fn the_page_has_every_key_shape() {
        let subject = Subject::from_hex(&"ab".repeat(32)).expect("a hash");
        let shapes = [
            format!("`{SESSION_PREFIX}<storage key, 64 hex>`"),
            format!("`{INDEX_PREFIX}<subject hash, 64 hex>:<handle, 32 hex>`"),
            format!("`{INDEX_PREFIX}<subject hash, 64 hex>:<session id>`"),
            format!("`{CACHE_PREFIX}<key>`"),
        ];
        for shape in shapes {
            assert!(
                PAGE.contains(&shape),
                "docs/storage.md lacks the key {shape}"
            );
        }
        assert_eq!(index_prefix(&subject), format!("sub:{}:", "ab".repeat(32)));
    }

    #[test]
    fn the_page_has_every_derivation_label_and_layout() {
        let derivations = PAGE
            .split("## Derivations")
            .nth(1)
            .expect("a Derivations section");
        let event: &[u8] = crate::domain::event::EVENT_LABEL;
        for label in LABELS.iter().chain(seal::LABELS).chain([&event]) {
            let shown = shown(label);
            assert!(derivations.contains(&shown), "Derivations lacks {shown}");
        }
        for layout in seal::layouts() {
            assert!(
                PAGE.contains(&layout),
                "docs/storage.md lacks the layout\n{layout}"
            );
        }
    }
}
