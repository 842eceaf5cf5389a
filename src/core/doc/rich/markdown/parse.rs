//! Markdown to [`Block`]s: pulldown-cmark's events read into the tree, what the schema cannot
//! hold turned into what it can (see `super`), nesting bounded by [`MAX_DEPTH`].

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

use crate::core::doc::rich::model::{push_text, Block, Inline, Marks, MAX_DEPTH};

/// Parses Markdown into blocks.
pub fn parse(markdown: &str) -> Vec<Block> {
    let mut reader = Reader {
        events: Parser::new_ext(markdown, super::options()).peekable(),
        marks: MarkState::default(),
        task: None,
        depth: 0,
    };
    reader.blocks(None)
}

/// Which marks are open while reading inline events.
#[derive(Default)]
struct MarkState {
    bold: u32,
    italic: u32,
    strike: u32,
    underline: u32,
    links: Vec<String>,
}

impl MarkState {
    fn marks(&self, code: bool) -> Marks {
        Marks {
            bold: self.bold > 0,
            italic: self.italic > 0,
            strike: self.strike > 0,
            underline: self.underline > 0,
            code,
            link: self.links.last().cloned(),
        }
    }
}

struct Reader<'a> {
    events: std::iter::Peekable<Parser<'a>>,
    marks: MarkState,
    /// The task marker of the list item being read, if it had one.
    task: Option<bool>,
    /// How many quotes and lists the reader is in.
    depth: usize,
}

fn is_inline(event: &Event) -> bool {
    match event {
        Event::Text(_)
        | Event::Code(_)
        | Event::InlineHtml(_)
        | Event::SoftBreak
        | Event::HardBreak
        | Event::FootnoteReference(_)
        | Event::InlineMath(_)
        | Event::TaskListMarker(_) => true,
        Event::Start(tag) => matches!(
            tag,
            Tag::Emphasis
                | Tag::Strong
                | Tag::Strikethrough
                | Tag::Link { .. }
                | Tag::Image { .. }
                | Tag::Superscript
                | Tag::Subscript
        ),
        Event::End(tag) => matches!(
            tag,
            TagEnd::Emphasis
                | TagEnd::Strong
                | TagEnd::Strikethrough
                | TagEnd::Link
                | TagEnd::Image
                | TagEnd::Superscript
                | TagEnd::Subscript
        ),
        _ => false,
    }
}

impl Reader<'_> {
    /// Blocks until `end` (or the end of input).
    fn blocks(&mut self, end: Option<TagEnd>) -> Vec<Block> {
        let mut blocks = Vec::new();
        let mut transparent = 0usize;
        while let Some(event) = self.events.next() {
            match event {
                Event::End(tag) if transparent == 0 && Some(tag) == end => break,
                Event::Start(Tag::Paragraph) => {
                    blocks.push(Block::Paragraph(self.inlines(TagEnd::Paragraph)))
                }
                Event::Start(Tag::Heading { level, .. }) => {
                    let inlines = self.inlines(TagEnd::Heading(level));
                    blocks.push(Block::Heading(level as u8, inlines));
                }
                // Quotes and lists too deep to keep are read through: their blocks land here.
                Event::Start(Tag::BlockQuote(_) | Tag::List(_) | Tag::Item)
                    if self.depth >= MAX_DEPTH =>
                {
                    transparent += 1
                }
                Event::End(TagEnd::BlockQuote(_) | TagEnd::List(_) | TagEnd::Item)
                    if transparent > 0 =>
                {
                    transparent -= 1
                }
                Event::Start(Tag::BlockQuote(kind)) => {
                    let end = Some(TagEnd::BlockQuote(kind));
                    blocks.push(Block::Quote(self.nested(|reader| reader.blocks(end))));
                }
                Event::Start(Tag::CodeBlock(kind)) => {
                    let language = match kind {
                        CodeBlockKind::Fenced(info) => info
                            .split_whitespace()
                            .next()
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                        CodeBlockKind::Indented => None,
                    };
                    let code = self.raw_text(TagEnd::CodeBlock);
                    blocks.push(Block::Code(language, code));
                }
                Event::Start(Tag::HtmlBlock) => {
                    let html = self.raw_text(TagEnd::HtmlBlock);
                    blocks.push(Block::Code(Some("html".into()), html));
                }
                Event::Start(Tag::List(start)) => {
                    blocks.push(self.nested(|reader| reader.list(start)))
                }
                Event::Start(Tag::Table(_)) => blocks.push(self.table()),
                Event::Rule => blocks.push(Block::Rule),
                // Inline content straight in a block (a tight list item): a paragraph.
                event if is_inline(&event) => {
                    let mut inlines = Vec::new();
                    self.inline(event, &mut inlines);
                    while self.events.peek().is_some_and(is_inline) {
                        if let Some(event) = self.events.next() {
                            self.inline(event, &mut inlines);
                        }
                    }
                    if !inlines.is_empty() {
                        blocks.push(Block::Paragraph(inlines));
                    }
                }
                // Anything else that holds blocks (a footnote's definition, metadata): its
                // blocks, in place.
                _ => {}
            }
        }
        blocks
    }

    /// Runs `read` one level deeper (`blocks` reads through what would be too deep).
    fn nested<T>(&mut self, read: impl FnOnce(&mut Self) -> T) -> T {
        self.depth += 1;
        let out = read(self);
        self.depth -= 1;
        out
    }

    /// The text of a code or HTML block, without its last newline.
    fn raw_text(&mut self, end: TagEnd) -> String {
        let mut text = String::new();
        for event in self.events.by_ref() {
            match event {
                Event::End(tag) if tag == end => break,
                Event::Text(t) | Event::Html(t) => text.push_str(&t),
                _ => {}
            }
        }
        if text.ends_with('\n') {
            text.pop();
        }
        text
    }

    fn inlines(&mut self, end: TagEnd) -> Vec<Inline> {
        let mut inlines = Vec::new();
        while let Some(event) = self.events.next() {
            match event {
                Event::End(tag) if tag == end => break,
                event => self.inline(event, &mut inlines),
            }
        }
        inlines
    }

    fn inline(&mut self, event: Event, out: &mut Vec<Inline>) {
        let marks = &mut self.marks;
        match event {
            Event::Text(text) => push_text(out, &text, &marks.marks(false)),
            Event::Code(code) => push_text(out, &code, &marks.marks(true)),
            Event::SoftBreak => push_text(out, " ", &marks.marks(false)),
            Event::HardBreak => out.push(Inline::Break),
            Event::TaskListMarker(checked) => {
                self.task.get_or_insert(checked);
            }
            Event::InlineHtml(html) => {
                let tag = html.trim().to_ascii_lowercase().replace(' ', "");
                match tag.as_str() {
                    "<u>" => marks.underline += 1,
                    "</u>" => marks.underline = marks.underline.saturating_sub(1),
                    "<strong>" | "<b>" => marks.bold += 1,
                    "</strong>" | "</b>" => marks.bold = marks.bold.saturating_sub(1),
                    "<em>" | "<i>" => marks.italic += 1,
                    "</em>" | "</i>" => marks.italic = marks.italic.saturating_sub(1),
                    "<s>" | "<del>" => marks.strike += 1,
                    "</s>" | "</del>" => marks.strike = marks.strike.saturating_sub(1),
                    "<br>" | "<br/>" => out.push(Inline::Break),
                    _ => push_text(out, &html, &marks.marks(false)),
                }
            }
            Event::FootnoteReference(label) => {
                push_text(out, &format!("[^{label}]"), &marks.marks(false))
            }
            Event::InlineMath(math) => push_text(out, &format!("${math}$"), &marks.marks(false)),
            Event::Start(Tag::Strong) => marks.bold += 1,
            Event::End(TagEnd::Strong) => marks.bold = marks.bold.saturating_sub(1),
            Event::Start(Tag::Emphasis) => marks.italic += 1,
            Event::End(TagEnd::Emphasis) => marks.italic = marks.italic.saturating_sub(1),
            Event::Start(Tag::Strikethrough) => marks.strike += 1,
            Event::End(TagEnd::Strikethrough) => marks.strike = marks.strike.saturating_sub(1),
            // An image becomes a link to it, its alt text the link's text.
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => marks.links.push(dest_url.to_string()),
            Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
                marks.links.pop();
            }
            _ => {}
        }
    }

    fn list(&mut self, start: Option<u64>) -> Block {
        let outer_task = self.task.take();
        let mut items: Vec<(Option<bool>, Vec<Block>)> = Vec::new();
        while let Some(event) = self.events.next() {
            match event {
                Event::Start(Tag::Item) => {
                    self.task = None;
                    let mut blocks = self.blocks(Some(TagEnd::Item));
                    // An item starts with a paragraph in TipTap's schema (an empty one if need be).
                    if !matches!(blocks.first(), Some(Block::Paragraph(_))) {
                        blocks.insert(0, Block::Paragraph(Vec::new()));
                    }
                    items.push((self.task.take(), blocks));
                }
                Event::End(TagEnd::List(_)) => break,
                _ => {}
            }
        }
        self.task = outer_task;
        let all_tasks = !items.is_empty() && items.iter().all(|(task, _)| task.is_some());
        if start.is_none() && all_tasks {
            return Block::TaskList(
                items
                    .into_iter()
                    .map(|(task, blocks)| (task.unwrap_or(false), blocks))
                    .collect(),
            );
        }
        // A marker where not every item has one stays as text.
        let items: Vec<Vec<Block>> = items
            .into_iter()
            .map(|(task, mut blocks)| {
                if let (Some(checked), Some(Block::Paragraph(inlines))) = (task, blocks.first_mut())
                {
                    let marker = if checked { "[x] " } else { "[ ] " };
                    let mut marked = Vec::new();
                    push_text(&mut marked, marker, &Marks::default());
                    for inline in inlines.drain(..) {
                        match inline {
                            Inline::Text(text, marks) => push_text(&mut marked, &text, &marks),
                            Inline::Break => marked.push(Inline::Break),
                        }
                    }
                    *inlines = marked;
                }
                blocks
            })
            .collect();
        match start {
            Some(start) => Block::OrderedList(start, items),
            None => Block::BulletList(items),
        }
    }

    fn table(&mut self) -> Block {
        let mut rows = Vec::new();
        let mut row: Vec<Vec<Inline>> = Vec::new();
        while let Some(event) = self.events.next() {
            match event {
                Event::Start(Tag::TableCell) => row.push(self.inlines(TagEnd::TableCell)),
                Event::End(TagEnd::TableHead) | Event::End(TagEnd::TableRow) => {
                    rows.push(std::mem::take(&mut row))
                }
                Event::End(TagEnd::Table) => break,
                _ => {}
            }
        }
        Block::Table(rows)
    }
}
