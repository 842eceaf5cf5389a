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
    if DocId::parse(trimmed).is_ok() {
        return bad("it looks like a document id");
    }
    Ok(trimmed.to_string())
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

/// Finds a document by id, local name, or unique id prefix (in that order).
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
            Err(Error::UnknownDoc(_))
        ));
        assert!(matches!(find(docs, "nope"), Err(Error::UnknownDoc(_))));
    }
}
