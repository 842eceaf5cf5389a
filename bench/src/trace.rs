//! Editing traces (the `josephg/editing-traces` format; see `../shared/data/editing-traces/`):
//! read a sequential trace, gzipped or not, into edits with UTF-16 offsets (what Yjs and yrs
//! count), with the final text a full replay must give; and write a synthetic one (the smoke
//! run's, so that it needs nothing beside the clone).

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

/// One edit: at a UTF-16 offset, delete that many code units, then insert.
#[derive(Debug, Clone)]
pub struct Edit {
    pub at: u32,
    pub delete: u32,
    pub insert: String,
}

pub struct Trace {
    pub name: String,
    pub edits: Vec<Edit>,
    /// The trace's final text, when all of it was read: a replay must give exactly this.
    pub end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

#[derive(Deserialize)]
struct Txn {
    patches: Vec<(usize, usize, String)>,
}

/// Reads a sequential trace; `limit` keeps only its first edits.
pub fn load(path: &Path, limit: Option<usize>) -> anyhow::Result<Trace> {
    let raw =
        std::fs::read(path).with_context(|| format!("cannot read trace {}", path.display()))?;
    let mut json = Vec::new();
    if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut json)
            .with_context(|| format!("{} is not a valid gzip file", path.display()))?;
    } else {
        json = raw;
    }
    let file: File = serde_json::from_slice(&json)
        .with_context(|| format!("{} is not an editing trace", path.display()))?;
    if file.kind.as_deref() == Some("concurrent") {
        bail!("{} is a concurrent trace; the harness replays sequential traces (automerge-paper, sveltecomponent)", path.display());
    }
    if !file.start_content.is_empty() {
        bail!(
            "{} starts from non-empty content; not supported",
            path.display()
        );
    }
    // Patch positions count code points, yrs counts UTF-16 code units: the same unless a
    // character outside the Basic Multilingual Plane occurs. Then the trace is replayed on a
    // code-point mirror to convert (slow, but outside any measurement).
    let limit = limit.unwrap_or(usize::MAX);
    let patches = file.txns.iter().flat_map(|t| t.patches.iter()).take(limit);
    let astral = patches
        .clone()
        .any(|(_, _, ins)| ins.chars().any(|c| c.len_utf16() == 2));
    let mut mirror: Vec<char> = Vec::new();
    let mut edits = Vec::new();
    for (pos, del, ins) in patches {
        let (pos, del) = (*pos, *del);
        if !astral {
            edits.push(Edit {
                at: pos as u32,
                delete: del as u32,
                insert: ins.clone(),
            });
            continue;
        }
        if pos + del > mirror.len() {
            bail!(
                "{}: an edit at {pos} (deleting {del}) lies outside the text",
                path.display()
            );
        }
        let utf16 = |chars: &[char]| chars.iter().map(|c| c.len_utf16() as u32).sum::<u32>();
        edits.push(Edit {
            at: utf16(&mirror[..pos]),
            delete: utf16(&mirror[pos..pos + del]),
            insert: ins.clone(),
        });
        mirror.splice(pos..pos + del, ins.chars());
    }
    // The caller checks its replay against this.
    let end = if edits.len() == file.txns.iter().map(|t| t.patches.len()).sum::<usize>() {
        Some(file.end_content)
    } else {
        None
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            n.trim_end_matches(".gz")
                .trim_end_matches(".json")
                .to_string()
        })
        .unwrap_or_default();
    Ok(Trace { name, edits, end })
}

/// A synthetic sequential trace of `edits` edits, the same for the same `seed`, in the
/// `josephg/editing-traces` format: someone typing (a character at the cursor), with now and
/// then a backspace, a jump of the cursor elsewhere, or a pasted word. ASCII only.
pub fn synthetic(edits: usize, seed: u64) -> serde_json::Value {
    use rand::{Rng, SeedableRng};
    const WORDS: [&str; 6] = ["peer ", "document ", "editing ", "together ", "sync ", "\n"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut text: Vec<u8> = Vec::new();
    let mut cursor = 0usize;
    let mut txns = Vec::with_capacity(edits);
    for _ in 0..edits {
        let roll = rng.gen_range(0..100);
        if roll < 3 && !text.is_empty() {
            cursor = rng.gen_range(0..=text.len());
        }
        let (del, ins) = if roll < 12 && cursor > 0 {
            cursor -= 1;
            (1, String::new())
        } else if roll < 15 {
            (0, WORDS[rng.gen_range(0..WORDS.len())].to_string())
        } else {
            (0, char::from(rng.gen_range(b'a'..=b'z')).to_string())
        };
        text.splice(cursor..cursor + del, ins.bytes());
        txns.push(serde_json::json!({ "patches": [[cursor, del, ins]] }));
        cursor += ins.len();
    }
    serde_json::json!({
        "kind": "sequential",
        "startContent": "",
        "endContent": String::from_utf8_lossy(&text),
        "txns": txns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_trace_replays_to_its_end_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synthetic.json");
        std::fs::write(&path, synthetic(3000, 7).to_string()).unwrap();
        let trace = load(&path, None).unwrap();
        assert_eq!(trace.edits.len(), 3000);
        let mut text = String::new();
        for edit in &trace.edits {
            let at = edit.at as usize;
            text.replace_range(at..at + edit.delete as usize, &edit.insert);
        }
        assert_eq!(Some(text), trace.end);
        assert_eq!(synthetic(50, 1), synthetic(50, 1));
    }
}
