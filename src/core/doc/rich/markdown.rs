//! Markdown (CommonMark with GFM tables, task lists and strikethrough) to and from [`Block`]s.
//!
//! Parsing keeps what TipTap's schema can hold and turns the rest into something it can, so no
//! text is lost: an image becomes a link to it, an HTML block a code block of its source, inline
//! HTML its text (but `<u>`, `<strong>`/`<b>`, `<em>`/`<i>` and `<s>`/`<del>`, which are marks,
//! and `<br>`, a line break), a footnote its text. Soft line breaks become spaces (paragraphs have no soft breaks), and a list's
//! tightness, a table's column alignment and a code block's indentation style are not kept.
//!
//! Rendering writes one canonical form: `**bold**`, `*italic*`, `~~strike~~`, `<u>underline</u>`,
//! `- ` bullets, `N. ` numbers, `- [ ]` tasks, fenced code, `---` rules, blocks one blank line
//! apart; text is escaped wherever it could be read as syntax, and spaces that start a line
//! are written as `&#32;`. So Markdown → document → Markdown is stable after the first pass
//! (tested over a corpus in the CommonMark spec's sections, and for any text by a property
//! test). Where CommonMark's flanking rules would read emphasis delimiters differently
//! (emphasis next to punctuation, delimiter runs that merge: `*(**"x**)*`), that paragraph's
//! bold, italic and strikethrough are written as `<strong>`, `<em>` and `<s>` instead, which
//! read back exactly. The `markdown` fuzz target still finds rare inputs that change on a
//! second pass (a code span among backslashes and emphasis): the text stays, a mark or a
//! backslash moves (to do).

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::model::{push_text, Block, Inline, Marks, MAX_DEPTH};

/// Parses Markdown into blocks.
pub fn parse(markdown: &str) -> Vec<Block> {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut reader = Reader {
        events: Parser::new_ext(markdown, options).peekable(),
        marks: MarkState::default(),
        task: None,
        depth: 0,
    };
    reader.blocks(None)
}

/// Renders blocks as Markdown, ending with a newline (nothing for no blocks).
pub fn render(blocks: &[Block]) -> String {
    let body = render_blocks(blocks);
    if body.is_empty() {
        body
    } else {
        body + "\n"
    }
}

/// Renders one block, without a trailing newline.
pub fn render_block(block: &Block) -> String {
    match block {
        Block::Paragraph(inlines) => inline_markdown(inlines, false),
        Block::Heading(level, inlines) => {
            let hashes = "#".repeat(usize::from((*level).clamp(1, 6)));
            format!("{hashes} {}", inline_markdown(inlines, false))
                .trim_end()
                .to_string()
        }
        Block::BulletList(items) => items
            .iter()
            .map(|item| list_item("- ", 2, item))
            .collect::<Vec<_>>()
            .join("\n"),
        Block::OrderedList(start, items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let marker = format!("{}. ", start + i as u64);
                list_item(&marker, marker.len(), item)
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Block::TaskList(items) => items
            .iter()
            // The checkbox is part of the item's content: its lines continue under the `[`.
            .map(|(checked, item)| list_item(if *checked { "- [x] " } else { "- [ ] " }, 2, item))
            .collect::<Vec<_>>()
            .join("\n"),
        Block::Quote(blocks) => render_blocks(blocks)
            .lines()
            .map(|line| {
                if line.is_empty() {
                    ">".to_string()
                } else {
                    format!("> {line}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Block::Code(language, code) => {
            let fence = "`".repeat(longest_run(code, '`').max(2) + 1);
            let language = language.as_deref().unwrap_or("");
            format!("{fence}{language}\n{code}\n{fence}")
        }
        Block::Rule => "---".into(),
        Block::Table(rows) => table(rows),
    }
}

/// The blocks' text without formatting: blocks a blank line apart, list items one per line
/// (`- `, `N. `, `[x] `), table cells tab-separated.
pub fn plain_text(blocks: &[Block]) -> String {
    let body = plain_blocks(blocks);
    if body.is_empty() {
        body
    } else {
        body + "\n"
    }
}

fn plain_blocks(blocks: &[Block]) -> String {
    let item = |marker: String, blocks: &[Block]| {
        let body = plain_blocks(blocks);
        let indent = " ".repeat(marker.chars().count());
        let mut lines = body.lines();
        let first = lines.next().unwrap_or_default();
        std::iter::once(format!("{marker}{first}"))
            .chain(lines.map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{indent}{l}")
                }
            }))
            .collect::<Vec<_>>()
            .join("\n")
    };
    blocks
        .iter()
        .map(|block| match block {
            Block::Paragraph(inlines) | Block::Heading(_, inlines) => super::model::plain(inlines),
            Block::BulletList(items) => items
                .iter()
                .map(|i| item("- ".into(), i))
                .collect::<Vec<_>>()
                .join("\n"),
            Block::OrderedList(start, items) => items
                .iter()
                .enumerate()
                .map(|(n, i)| item(format!("{}. ", start + n as u64), i))
                .collect::<Vec<_>>()
                .join("\n"),
            Block::TaskList(items) => items
                .iter()
                .map(|(checked, i)| item(if *checked { "[x] " } else { "[ ] " }.into(), i))
                .collect::<Vec<_>>()
                .join("\n"),
            Block::Quote(blocks) => plain_blocks(blocks),
            Block::Code(_, code) => code.clone(),
            Block::Rule => String::new(),
            Block::Table(rows) => rows
                .iter()
                .map(|cells| {
                    cells
                        .iter()
                        .map(|c| super::model::plain(c).replace('\n', " "))
                        .collect::<Vec<_>>()
                        .join("\t")
                })
                .collect::<Vec<_>>()
                .join("\n"),
        })
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn render_blocks(blocks: &[Block]) -> String {
    blocks
        .iter()
        .map(render_block)
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A list item: its marker, then its blocks, continuation lines indented by `indent` (where
/// the item's content begins).
fn list_item(marker: &str, indent: usize, blocks: &[Block]) -> String {
    let body = render_blocks(blocks);
    if body.is_empty() {
        return marker.trim_end().to_string();
    }
    let indent = " ".repeat(indent);
    let mut out = String::new();
    for (i, line) in body.lines().enumerate() {
        if i == 0 {
            out.push_str(marker);
        } else {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&indent);
            }
        }
        out.push_str(line);
    }
    out
}

fn table(rows: &[Vec<Vec<Inline>>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    if columns == 0 {
        return String::new();
    }
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    let row = |cells: &Vec<Vec<Inline>>| {
        line(
            (0..columns)
                .map(|c| {
                    cells
                        .get(c)
                        .map_or(String::new(), |cell| inline_markdown(cell, true))
                })
                .collect(),
        )
    };
    let mut out = vec![row(&rows[0]), line(vec!["---".to_string(); columns])];
    out.extend(rows[1..].iter().map(row));
    out.join("\n")
}

fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for ch in text.chars() {
        run = if ch == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// A mark as Markdown opens and closes it, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delimiter {
    Link(String),
    Bold,
    Italic,
    Strike,
    Underline,
}

impl Delimiter {
    fn all(marks: &Marks) -> Vec<Delimiter> {
        let mut out = Vec::new();
        if let Some(href) = &marks.link {
            out.push(Delimiter::Link(href.clone()));
        }
        for (on, delimiter) in [
            (marks.bold, Delimiter::Bold),
            (marks.italic, Delimiter::Italic),
            (marks.strike, Delimiter::Strike),
            (marks.underline, Delimiter::Underline),
        ] {
            if on {
                out.push(delimiter);
            }
        }
        out
    }

    fn open(&self, tags: bool) -> &'static str {
        match (self, tags) {
            (Delimiter::Link(_), _) => "[",
            (Delimiter::Bold, false) => "**",
            (Delimiter::Bold, true) => "<strong>",
            (Delimiter::Italic, false) => "*",
            (Delimiter::Italic, true) => "<em>",
            (Delimiter::Strike, false) => "~~",
            (Delimiter::Strike, true) => "<s>",
            (Delimiter::Underline, _) => "<u>",
        }
    }

    fn close(&self, tags: bool) -> String {
        match (self, tags) {
            (Delimiter::Link(href), _) => format!("]({})", link_destination(href)),
            (Delimiter::Bold, false) => "**".into(),
            (Delimiter::Bold, true) => "</strong>".into(),
            (Delimiter::Italic, false) => "*".into(),
            (Delimiter::Italic, true) => "</em>".into(),
            (Delimiter::Strike, false) => "~~".into(),
            (Delimiter::Strike, true) => "</s>".into(),
            (Delimiter::Underline, _) => "</u>".into(),
        }
    }
}

fn link_destination(href: &str) -> String {
    if href.is_empty()
        || href
            .chars()
            .any(|c| c.is_whitespace() || "()<>\\".contains(c))
    {
        let mut out = String::from("<");
        for c in href.chars() {
            if "<>\\".contains(c) {
                out.push('\\');
            }
            out.push(if c == '\n' { ' ' } else { c });
        }
        out.push('>');
        out
    } else {
        href.to_string()
    }
}

/// Inline content as Markdown. Whitespace at the edges of a marked run goes outside its
/// delimiters (`** a**` would not be bold). In a table cell, `|` is escaped and a break is a
/// space (a cell is one line).
fn inline_markdown(inlines: &[Inline], in_table: bool) -> String {
    let markdown = inline_markdown_as(inlines, in_table, false);
    if reads_back(&markdown, in_table) {
        markdown
    } else {
        // CommonMark's flanking rules would read the delimiters differently (emphasis next to
        // punctuation, delimiter runs that merge): tags read back exactly.
        inline_markdown_as(inlines, in_table, true)
    }
}

/// Whether inline Markdown parses back to inlines that render the same.
fn reads_back(markdown: &str, in_table: bool) -> bool {
    match parse(markdown).as_slice() {
        [] => markdown.is_empty(),
        [Block::Paragraph(inlines)] => inline_markdown_as(inlines, in_table, false) == markdown,
        _ => false,
    }
}

/// Inline content as Markdown; with `tags`, bold, italic and strikethrough as `<strong>`,
/// `<em>` and `<s>`.
fn inline_markdown_as(inlines: &[Inline], in_table: bool, tags: bool) -> String {
    let mut out = String::new();
    let mut open: Vec<Delimiter> = Vec::new();
    let mut held = String::new(); // trailing whitespace of the last run, placed once marks close
    let close_to = |out: &mut String, open: &mut Vec<Delimiter>, keep: usize| {
        while open.len() > keep {
            if let Some(d) = open.pop() {
                out.push_str(&d.close(tags));
            }
        }
    };
    for inline in inlines {
        match inline {
            Inline::Break => {
                close_to(&mut out, &mut open, 0);
                held.clear();
                out.push_str(if in_table { " " } else { "\\\n" });
            }
            Inline::Text(text, marks) => {
                let core = text.trim_matches(|c: char| c == ' ' || c == '\t');
                let lead = &text[..text.len() - text.trim_start_matches([' ', '\t']).len()];
                let trail = &text[text.trim_end_matches([' ', '\t']).len()..];
                if core.is_empty() {
                    held.push_str(text);
                    continue;
                }
                let wanted = Delimiter::all(marks);
                let keep = open.iter().zip(&wanted).take_while(|(a, b)| a == b).count();
                close_to(&mut out, &mut open, keep);
                held.push_str(lead);
                if out.is_empty() || out.ends_with('\n') {
                    // Markdown drops spaces that start a line: as references, they stay.
                    for c in held.chars() {
                        out.push_str(if c == '\t' { "&#9;" } else { "&#32;" });
                    }
                } else {
                    out.push_str(&held);
                }
                held.clear();
                for d in &wanted[keep..] {
                    out.push_str(d.open(tags));
                    open.push(d.clone());
                }
                if marks.code {
                    out.push_str(&code_span(core, in_table));
                } else {
                    escape_into(&mut out, core, in_table);
                }
                held.push_str(trail);
            }
        }
    }
    close_to(&mut out, &mut open, 0);
    out
}

fn code_span(code: &str, in_table: bool) -> String {
    let fence = "`".repeat(longest_run(code, '`') + 1);
    let code = if in_table {
        code.replace('|', "\\|")
    } else {
        code.to_string()
    };
    let pad = code.starts_with(['`', ' ']) || code.ends_with(['`', ' ']);
    let space = if pad { " " } else { "" };
    format!("{fence}{space}{code}{space}{fence}")
}

/// Text, escaped wherever Markdown could read it as syntax: inline delimiters anywhere, and
/// what starts a block at the start of a line.
fn escape_into(out: &mut String, text: &str, in_table: bool) {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let line_start = out.is_empty() || out.ends_with('\n');
        let escape = match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '~' | '&' => true,
            '|' => true,
            '!' => chars.get(i + 1) == Some(&'['),
            '#' | '-' | '+' | '=' => line_start,
            '.' | ')' => {
                // "1." or "1)" at a line's start would begin an ordered list.
                let digits = out.chars().rev().take_while(char::is_ascii_digit).count();
                digits > 0 && {
                    let before = &out[..out.len() - digits];
                    before.is_empty() || before.ends_with('\n')
                }
            }
            _ => false,
        };
        let _ = in_table; // `|` is escaped everywhere: a paragraph may become a table's row
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
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
