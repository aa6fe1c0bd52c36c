//! Counting an object's members before collecting them, so that the scan makes their table once
//! at its size ([`crate::domain::json::scan()`]).

/// From this length on, a text's members are counted before they are collected (a pass more),
/// so that their table is made once at its size. Below it, what doubling leaves unused is small.
pub const COUNTED_FIRST: usize = 256 * 1024;

/// How many members the outermost object of `text` has, if `text` is JSON: the commas between
/// its members, counted without checking the grammar (the scan does that), and never more than a
/// text of this length can hold (`"":0,` is the shortest member), whatever `text` is.
pub fn outer_members(text: &str) -> usize {
    let bytes = text.as_bytes();
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return 0;
    }
    let (mut depth, mut commas, mut content) = (0usize, 0usize, false);
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                content |= depth == 1;
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => {
                content |= depth == 1;
                depth += 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => commas += 1,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => content |= depth == 1,
        }
        at += 1;
    }
    let count = if content { commas + 1 } else { 0 };
    count.min(text.len() / 5 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_members_of_anything_is_bounded_by_its_length() {
        let commas = format!("{{{}}}", "0,".repeat(10_000));
        assert_eq!(outer_members(&commas), commas.len() / 5 + 1);
        assert_eq!(
            outer_members("[1,2,3]"),
            0,
            "not an object: nothing at depth 1 of one"
        );
    }
}
