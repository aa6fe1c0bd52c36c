//! Which entries a revocation takes out of a subject's index: those its [`Choice`] picks, and
//! every entry whose session moved from one of them (a renewal, rotation or reauthentication
//! made meanwhile), but none that moved from the session it keeps. Pure: the rows in, the
//! handles out.

use crate::domain::derive::Handle;
use crate::store::{Choice, Entry};

/// The handles `choice` takes among `entries`: those it picks, and every entry that moved
/// from one of them; not those that moved from the one a revocation keeps.
pub fn chosen(entries: &[(Entry, Option<Handle>)], choice: &Choice<'_>) -> Vec<Handle> {
    let follow = |mut from: Vec<Handle>| loop {
        let next: Vec<Handle> = entries
            .iter()
            .filter(|(entry, moved)| {
                moved.is_some_and(|moved| from.contains(&moved))
                    && !from.contains(&entry.key.handle)
            })
            .map(|(entry, _)| entry.key.handle)
            .collect();
        if next.is_empty() {
            return from;
        }
        from.extend(next);
    };
    let kept = match choice {
        Choice::All {
            except: Some(except),
            ..
        } => follow(vec![*except]),
        _ => Vec::new(),
    };
    let picked = entries
        .iter()
        .filter(|(entry, _)| choice.picks(&entry.key) && !kept.contains(&entry.key.handle))
        .map(|(entry, _)| entry.key.handle)
        .collect();
    follow(picked)
        .into_iter()
        .filter(|handle| !kept.contains(handle))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::id::SessionId;
    use crate::store::{EntryKey, SessionRef};

    fn handle(n: u8) -> Handle {
        Handle::of(&SessionId::from_random_bytes([n; 16]))
    }

    /// Session `n`, created at `n`, moved from `from` if given.
    fn row(n: u8, from: Option<u8>) -> (Entry, Option<Handle>) {
        let id = SessionId::from_random_bytes([n; 16]);
        let key = EntryKey {
            handle: handle(n),
            at: SessionRef::Id(id),
            created_at: u64::from(n),
        };
        let entry = Entry {
            key,
            activity: None,
            device: None,
        };
        (entry, from.map(handle))
    }

    fn sorted(mut handles: Vec<Handle>) -> Vec<Handle> {
        handles.sort();
        handles
    }

    #[test]
    fn a_revocation_takes_what_moved_from_what_it_takes_and_keeps_what_moved_from_the_kept() {
        // 1 → 2 → 3 is one session renewed twice meanwhile; 4 → 5 another; 6 stands alone.
        let rows = [
            row(1, None),
            row(2, Some(1)),
            row(3, Some(2)),
            row(4, None),
            row(5, Some(4)),
            row(6, None),
        ];
        let one = [handle(1)];
        assert_eq!(
            sorted(chosen(&rows, &Choice::Handles(&one))),
            sorted(vec![handle(1), handle(2), handle(3)])
        );
        let others = Choice::All {
            except: Some(handle(4)),
            before: None,
        };
        assert_eq!(
            sorted(chosen(&rows, &others)),
            sorted([1, 2, 3, 6].map(handle).to_vec()),
            "the kept session's successor stays"
        );
        let before = Choice::All {
            except: None,
            before: Some(2),
        };
        assert_eq!(
            sorted(chosen(&rows, &before)),
            sorted(vec![handle(1), handle(2), handle(3)]),
            "a successor goes with what it moved from, whatever its own row says"
        );
        assert_eq!(chosen(&rows, &Choice::Handles(&[handle(9)])), []);
    }
}
