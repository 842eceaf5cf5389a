//! The links documents hold for attachments (`/api/docs/<doc>/blobs/<reference>/<name>`):
//! made, read back for the names they give, and the content type a name means.

use std::collections::HashMap;

use crate::core::blob::{refs_in, BlobRef};
use crate::core::doc::DocId;

/// The link a document holds for an attachment.
pub fn blob_link(doc: &DocId, blob: &BlobRef, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("/api/docs/{doc}/blobs/{blob}/{name}")
}

/// File names links give their attachments: the last segment of `…/blobs/<ref>/<name>`.
pub(super) fn link_names(text: &str) -> HashMap<BlobRef, String> {
    let mut out = HashMap::new();
    for blob in refs_in(text) {
        let marker = format!("{blob}/");
        if let Some(at) = text.find(&marker) {
            let rest = &text[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !")]\"'<>".contains(*c))
                .collect();
            if !name.is_empty() {
                out.insert(blob, name);
            }
        }
    }
    out
}

/// Whether a file name is an image a browser shows inline.
pub fn is_image(name: &str) -> bool {
    matches!(
        content_type(name),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif"
    )
}

/// The content type an attachment is served with, by its name. Types a browser would run
/// (HTML, SVG) are served as downloads.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "pdf" => "application/pdf",
        "txt" | "md" | "csv" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

pub(super) fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::blob::BlobHash;

    #[test]
    fn links_name_their_files_and_dangerous_types_download() {
        let blob = BlobRef {
            hash: BlobHash([1; 32]),
            key: [2; 32],
            size: 3,
        };
        let doc = DocId([4; 16]);
        let link = blob_link(&doc, &blob, "my photo (1).png");
        assert!(link.ends_with("/my_photo__1_.png"), "{link}");
        let text = format!("![x]({link}) and [y]({blob})");
        assert_eq!(
            link_names(&text).get(&blob).map(String::as_str),
            Some("my_photo__1_.png")
        );
        assert!(is_image("a.PNG"));
        assert_eq!(content_type("x.svg"), "application/octet-stream");
        assert_eq!(content_type("x.html"), "application/octet-stream");
        assert_eq!(human_size(1536), "1.5 KB");
    }
}
