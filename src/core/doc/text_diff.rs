//! The minimal diff between two texts that a whole-text write becomes (so that concurrent
//! edits elsewhere survive), in the UTF-16 offsets Yjs counts.

pub(super) fn utf16_len(s: &str) -> u32 {
    s.encode_utf16().count() as u32
}

pub(super) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One replacement in UTF-16 offsets of the *old* text.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TextEdit {
    pub(super) at: u32,
    pub(super) delete: u32,
    pub(super) insert: String,
}

/// Above this many bytes of differing text, [`text_edits`] diffs lines instead of characters:
/// a character diff holds a 16-byte token per character of both texts (a 60 MB import took
/// 1.3 GB), a line diff one per line.
pub(super) const CHAR_DIFF_MAX: usize = 1 << 20;

/// Diff from `old` to `new` as non-overlapping edits in ascending order: the common prefix and
/// suffix are left alone, what lies between is diffed by character (or by line when large).
pub(super) fn text_edits(old: &str, new: &str) -> Vec<TextEdit> {
    use similar::{Algorithm, ChangeTag, TextDiff};
    let prefix = common_prefix(old, new);
    let suffix = common_suffix(&old[prefix..], &new[prefix..]);
    let (old_mid, new_mid) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    let mut config = TextDiff::configure();
    config
        .algorithm(Algorithm::Myers)
        // Bounded work on huge rewrites: past the deadline the diff is coarser, never wrong.
        .timeout(std::time::Duration::from_millis(500));
    let diff = if old_mid.len() + new_mid.len() > CHAR_DIFF_MAX {
        config.diff_lines(old_mid, new_mid)
    } else {
        config.diff_chars(old_mid, new_mid)
    };
    let mut edits: Vec<TextEdit> = Vec::new();
    let mut pos = utf16_len(&old[..prefix]); // UTF-16 offset in the old text
    let mut open = false; // whether the last edit ends at `pos` and can grow
    for change in diff.iter_all_changes() {
        let value = change.value();
        let len = utf16_len(value);
        match change.tag() {
            ChangeTag::Equal => {
                pos += len;
                open = false;
            }
            tag => {
                if !open {
                    edits.push(TextEdit {
                        at: pos,
                        delete: 0,
                        insert: String::new(),
                    });
                    open = true;
                }
                let edit = edits.last_mut().expect("just pushed");
                if tag == ChangeTag::Delete {
                    edit.delete += len;
                    pos += len;
                } else {
                    edit.insert.push_str(value);
                }
            }
        }
    }
    edits
}

/// Bytes at the start both texts share, ending at a character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let same = a
        .as_bytes()
        .iter()
        .zip(b.as_bytes())
        .take_while(|(x, y)| x == y)
        .count();
    floor_char_boundary(a, same)
}

/// Bytes at the end both texts share, starting at a character boundary.
fn common_suffix(a: &str, b: &str) -> usize {
    let same = a
        .as_bytes()
        .iter()
        .rev()
        .zip(b.as_bytes().iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut start = a.len() - same;
    while !a.is_char_boundary(start) {
        start += 1;
    }
    a.len() - start
}
