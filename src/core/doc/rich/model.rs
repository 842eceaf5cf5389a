//! The rich document as a tree of blocks and marked text: what Markdown and the Yjs XML of a
//! TipTap document (`XmlFragment('default')`) both become, so each converts to and from one
//! thing. Only what TipTap's schema holds is here (see `super` for what is not).

/// How deep blocks nest at most (quotes and lists in one another). Anything deeper, from
/// Markdown or from a peer's document, is read one level up instead: the content stays, and
/// no input can make reading, rendering or writing recurse without bound (a stack overflow
/// would abort the node).
pub const MAX_DEPTH: usize = 32;

/// A block of the document (TipTap's node names in the comments).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Block {
    /// `paragraph`
    Paragraph(Vec<Inline>),
    /// `heading`, level 1–6 (the editor offers 1–3).
    Heading(u8, Vec<Inline>),
    /// `bulletList` of `listItem`s.
    BulletList(Vec<Vec<Block>>),
    /// `orderedList` (its `start`) of `listItem`s.
    OrderedList(u64, Vec<Vec<Block>>),
    /// `taskList` of `taskItem`s (each `checked` or not).
    TaskList(Vec<(bool, Vec<Block>)>),
    /// `blockquote`
    Quote(Vec<Block>),
    /// `codeBlock`, with its `language` if any.
    Code(Option<String>, String),
    /// `horizontalRule`
    Rule,
    /// `table` of `tableRow`s; the first row's cells are `tableHeader`s, the others'
    /// `tableCell`s. Each cell holds one paragraph.
    Table(Vec<Vec<Vec<Inline>>>),
}

/// A run of text with its marks, or a line break inside a block.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Inline {
    Text(String, Marks),
    /// `hardBreak`
    Break,
}

/// The marks on a run of text (TipTap's `bold`, `italic`, `strike`, `underline`, `code` and
/// `link` with its `href`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Marks {
    pub bold: bool,
    pub italic: bool,
    pub strike: bool,
    pub underline: bool,
    pub code: bool,
    pub link: Option<String>,
}

/// Appends text with `marks` to `inlines`, joined to the run before it if that has the same
/// marks (so a tree has no two neighbouring runs with equal marks, and trees compare equal
/// however their text was split).
pub fn push_text(inlines: &mut Vec<Inline>, text: &str, marks: &Marks) {
    if text.is_empty() {
        return;
    }
    if let Some(Inline::Text(last, last_marks)) = inlines.last_mut() {
        if last_marks == marks {
            last.push_str(text);
            return;
        }
    }
    inlines.push(Inline::Text(text.to_string(), marks.clone()));
}

/// The text of inlines, without marks (a break is a newline).
pub fn plain(inlines: &[Inline]) -> String {
    inlines
        .iter()
        .map(|inline| match inline {
            Inline::Text(text, _) => text.as_str(),
            Inline::Break => "\n",
        })
        .collect()
}
