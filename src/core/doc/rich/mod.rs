//! Rich documents: TipTap's document model in `XmlFragment('default')`, which TipTap,
//! y-prosemirror and BlockNote editors bind to, read and written as Markdown (`markdown`), with
//! [`Block`]s between the two (`model`, `xml`).
//!
//! A document is rich when its `peerdoc` map says `kind: "rich"` (set once, when it is created;
//! so every member knows, and a document never changes kind). Documents from before, and those
//! made with `new --plain`, are plain text in `Text('content')`.
//!
//! A replacement changes only the blocks whose Markdown differs from the new text's (a Myers
//! diff over the blocks), so a concurrent edit in any other block survives the merge.

pub mod markdown;
pub mod model;
mod text;
pub mod xml;

pub use model::{Block, Inline, Marks};

use yrs::{Any, Map, Out, Transact, XmlFragment};

use super::Document;

/// The root map of peerdoc's own fields in a document.
pub const META_NAME: &str = "peerdoc";
/// The XML fragment TipTap's collaboration extension binds to.
pub const FRAGMENT_NAME: &str = "default";

/// What a document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain text in `Text('content')`.
    Plain,
    /// TipTap's rich text in `XmlFragment('default')`.
    Rich,
}

/// What a document can be exported as (`cat --format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown for a rich document; the text itself for a plain one.
    Markdown,
    /// An HTML fragment (a plain document's text in a `<pre>`).
    Html,
    /// The text without formatting.
    Text,
}

impl Document {
    /// What `cat` prints and `write` takes: Markdown for a rich document, the text for a
    /// plain one.
    pub fn content(&self) -> String {
        match self.kind() {
            Kind::Rich => self.markdown(),
            Kind::Plain => self.text(),
        }
    }

    /// Replaces the content ([`Document::content`]): block by block for a rich document, as a
    /// minimal character diff for a plain one. Returns the update, if any.
    pub fn replace_content(&mut self, new: &str) -> Option<Vec<u8>> {
        match self.kind() {
            Kind::Rich => self.replace_markdown(new),
            Kind::Plain => self.replace_text(new),
        }
    }

    /// Appends to the content: blocks for a rich document, text for a plain one.
    pub fn append_content(&mut self, more: &str) -> Option<Vec<u8>> {
        match self.kind() {
            Kind::Rich => self.append_markdown(more),
            Kind::Plain => self.append_text(more),
        }
    }

    /// The document in `format`.
    pub fn export(&self, format: Format) -> String {
        match (self.kind(), format) {
            (_, Format::Markdown) => self.content(),
            (Kind::Rich, Format::Html) => {
                let markdown = self.markdown();
                let mut html = String::new();
                pulldown_cmark::html::push_html(
                    &mut html,
                    pulldown_cmark::Parser::new_ext(&markdown, markdown::options()),
                );
                html
            }
            (Kind::Plain, Format::Html) => {
                let mut html = String::from("<pre>");
                pulldown_cmark::html::push_html(
                    &mut html,
                    std::iter::once(pulldown_cmark::Event::Text(self.text().into())),
                );
                html.push_str("</pre>\n");
                html
            }
            (Kind::Rich, Format::Text) => text::plain_text(&self.blocks()),
            (Kind::Plain, Format::Text) => self.text(),
        }
    }

    /// Whether the document is rich text (see the module's doc).
    pub fn kind(&self) -> Kind {
        let txn = self.doc.transact();
        match self.meta.get(&txn, "kind") {
            Some(Out::Any(Any::String(kind))) if &*kind == "rich" => Kind::Rich,
            _ => Kind::Plain,
        }
    }

    /// Makes a new document rich (the first edit of a rich document). Returns the update.
    pub fn make_rich(&mut self) -> Option<Vec<u8>> {
        if self.kind() == Kind::Rich {
            return None;
        }
        let mut txn = self.doc.transact_mut();
        self.meta.insert(&mut txn, "kind", "rich");
        Some(txn.encode_update_v1())
    }

    /// The rich text's blocks.
    pub fn blocks(&self) -> Vec<Block> {
        let txn = self.doc.transact();
        xml::read_children(&self.rich, &txn)
    }

    /// The rich text as Markdown.
    pub fn markdown(&self) -> String {
        markdown::render(&self.blocks())
    }

    /// Replaces the rich text with `new` (Markdown), changing only the blocks that differ.
    /// Returns the update, if anything changed.
    pub fn replace_markdown(&mut self, new: &str) -> Option<Vec<u8>> {
        // Blocks compare as the Markdown they render to.
        self.replace_blocks_by(&markdown::parse(new), |blocks| {
            markdown::render(blocks).trim_end().to_string()
        })
    }

    /// Replaces the rich text with `wanted`, changing only the blocks that differ (as trees:
    /// what Markdown cannot tell apart is compared too). Returns the update, if any.
    pub fn replace_blocks(&mut self, wanted: &[Block]) -> Option<Vec<u8>> {
        self.replace_blocks_by(wanted, <[Block]>::to_vec)
    }

    /// Replaces the fragment's children with `wanted` by a Myers diff of their `key`s (a child
    /// read as its blocks, a wanted block alone): only the blocks that differ change, so a
    /// concurrent edit in another block survives.
    fn replace_blocks_by<K: std::hash::Hash + Ord>(
        &mut self,
        wanted: &[Block],
        key: impl Fn(&[Block]) -> K,
    ) -> Option<Vec<u8>> {
        let wanted_keys: Vec<K> = wanted
            .iter()
            .map(|b| key(std::slice::from_ref(b)))
            .collect();
        let mut txn = self.doc.transact_mut();
        let current: Vec<K> = self
            .rich
            .children(&txn)
            .map(|child| key(&xml::read_node(&child, &txn)))
            .collect();
        let mut shift: i64 = 0;
        for op in similar::capture_diff_slices(similar::Algorithm::Myers, &current, &wanted_keys) {
            if op.tag() == similar::DiffTag::Equal {
                continue;
            }
            let (old, new) = (op.old_range(), op.new_range());
            let at = (old.start as i64 + shift) as u32;
            if !old.is_empty() {
                self.rich.remove_range(&mut txn, at, old.len() as u32);
            }
            xml::write_blocks(&self.rich, &mut txn, at, &wanted[new.clone()]);
            shift += new.len() as i64 - old.len() as i64;
        }
        txn.has_changes().then(|| txn.encode_update_v1())
    }

    /// Appends Markdown's blocks at the end of the rich text. Returns the update, if any.
    pub fn append_markdown(&mut self, more: &str) -> Option<Vec<u8>> {
        let blocks = markdown::parse(more);
        if blocks.is_empty() {
            return None;
        }
        let mut txn = self.doc.transact_mut();
        let at = self.rich.len(&txn);
        xml::write_blocks(&self.rich, &mut txn, at, &blocks);
        Some(txn.encode_update_v1())
    }
}

#[cfg(test)]
mod tests;
