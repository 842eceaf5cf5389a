//! How documents are named and found: which local names are valid, how a taken name is made
//! unique, and how a user's DOC argument (id, name or id prefix) resolves to one document.

use super::Error;
use crate::core::doc::{DocId, MAX_NAME_LEN};
use crate::replica::store::DocMeta;

/// Shortest id prefix accepted where a document is named.
pub(crate) const MIN_PREFIX_LEN: usize = 4;

/// The trimmed name, if it is a valid local document name.
pub(crate) fn validate_name(name: &str) -> Result<String, Error> {
    let trimmed = name.trim();
    let bad = |why| Err(Error::BadName(name.to_string(), why));
    if trimmed.is_empty() {
        return bad("it is empty");
    }
    if trimmed.len() > MAX_NAME_LEN {
        return bad("it is longer than 200 bytes");
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return bad("it contains control characters");
    }
    if trimmed.chars().any(is_bidi_control) {
        return bad("it contains bidirectional control characters (they can disguise a name)");
    }
    if looks_like_id(trimmed) {
        return bad("it looks like a document id or id prefix (hex digits only); add a letter past f or a space");
    }
    Ok(trimmed.to_string())
}

/// Characters that reorder how text is shown (embeddings, overrides, isolates, marks): in a
/// name they can make `ls` show something other than what is stored.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A name that could be read as an id or an id prefix: only hex digits, at least as long as a
/// prefix. (Such a name would shadow, or be shadowed by, the prefix of another document.)
fn looks_like_id(name: &str) -> bool {
    name.len() >= MIN_PREFIX_LEN && name.chars().all(|c| c.is_ascii_hexdigit())
}

/// `name`, or `name-2`, `name-3`… if taken.
pub(crate) fn unique_name(name: &str, docs: &[DocMeta]) -> String {
    let taken = |n: &str| docs.iter().any(|m| m.name == n);
    if !taken(name) {
        return name.to_string();
    }
    (2..)
        .map(|i| format!("{name}-{i}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
}

/// Which document a call is about: its id, or what a user typed (its id, its local name, or a
/// unique id prefix, looked up in that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocRef<'a> {
    Id(DocId),
    Query(&'a str),
}

impl From<DocId> for DocRef<'_> {
    fn from(id: DocId) -> Self {
        DocRef::Id(id)
    }
}

impl From<&DocId> for DocRef<'_> {
    fn from(id: &DocId) -> Self {
        DocRef::Id(*id)
    }
}

impl<'a> From<&'a str> for DocRef<'a> {
    fn from(query: &'a str) -> Self {
        DocRef::Query(query)
    }
}

impl<'a> From<&'a String> for DocRef<'a> {
    fn from(query: &'a String) -> Self {
        DocRef::Query(query)
    }
}

impl std::fmt::Display for DocRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocRef::Id(id) => write!(f, "{id}"),
            DocRef::Query(query) => f.write_str(query),
        }
    }
}

/// Finds a document by, in this order: its exact id, its exact local name, or a unique id
/// prefix of at least [`MIN_PREFIX_LEN`] characters. (New names cannot look like ids, so only
/// names from before that rule can shadow a prefix.)
pub(crate) fn find(docs: Vec<DocMeta>, query: &str) -> Result<DocMeta, Error> {
    let q = query.trim();
    let lower = q.to_ascii_lowercase();
    if let Some(m) = docs.iter().find(|m| m.id.to_string() == lower) {
        return Ok(m.clone());
    }
    if let Some(m) = docs.iter().find(|m| m.name == q) {
        return Ok(m.clone());
    }
    let matches: Vec<&DocMeta> = if lower.len() >= MIN_PREFIX_LEN {
        docs.iter()
            .filter(|m| m.id.to_string().starts_with(&lower))
            .collect()
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] if !lower.is_empty()
            && lower.len() < MIN_PREFIX_LEN
            && lower.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Err(Error::ShortPrefix(query.to_string()))
        }
        [] => Err(Error::UnknownDoc(query.to_string())),
        many => Err(Error::AmbiguousDoc(
            query.to_string(),
            many.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::doc::DocId;

    fn meta(name: &str) -> DocMeta {
        DocMeta::new_for_test(name)
    }

    #[test]
    fn names_are_validated_and_made_unique() {
        assert!(validate_name("  ").is_err());
        assert!(validate_name("a\u{7}b").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
        assert!(validate_name(&DocId::random().to_string()).is_err());
        assert_eq!(validate_name(" notes ").unwrap(), "notes");
        // Names that read as ids or prefixes, and names that reorder how they are shown.
        for bad in [
            "5897",
            "CAFE",
            "deadbeef",
            "abc\u{202E}fdp.exe",
            "x\u{2067}y",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in ["abc", "2024 notes", "face-off", "café"] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
        let docs = vec![meta("notes"), meta("notes-2")];
        assert_eq!(unique_name("notes", &docs), "notes-3");
        assert_eq!(unique_name("todo", &docs), "todo");
    }

    #[test]
    fn documents_are_found_by_id_name_or_unique_prefix() {
        let docs = vec![meta("notes"), meta("todo")];
        let id = docs[0].id.to_string();
        assert_eq!(find(docs.clone(), &id.to_uppercase()).unwrap(), docs[0]);
        assert_eq!(find(docs.clone(), " todo ").unwrap(), docs[1]);
        assert_eq!(find(docs.clone(), &id[..6]).unwrap(), docs[0]);
        assert!(matches!(
            find(docs.clone(), &id[..3]),
            Err(Error::ShortPrefix(_))
        ));
        assert!(matches!(find(docs, "nope"), Err(Error::UnknownDoc(_))));
    }
}
