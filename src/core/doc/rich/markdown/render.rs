//! [`Block`]s to Markdown in one canonical form (see `super`): delimiters where they read back,
//! tags where they would not, text escaped wherever it could be read as syntax.

use super::parse;
use crate::core::doc::rich::model::{Block, Inline, Marks};

/// Renders blocks as Markdown, ending with a newline (nothing for no blocks).
pub fn render(blocks: &[Block]) -> String {
    with_final_newline(render_blocks(blocks))
}

/// A text of blocks ends with a newline; no blocks, no text.
pub(crate) fn with_final_newline(body: String) -> String {
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
                    escape_into(&mut out, core);
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
fn escape_into(out: &mut String, text: &str) {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let line_start = out.is_empty() || out.ends_with('\n');
        let escape = match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '~' | '&' => true,
            // Everywhere, not only in tables: a paragraph's line may read as a table's row.
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
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}
