//! [`Block`]s as text without formatting (`cat --format text`).

use super::markdown::with_final_newline;
use super::model::{plain, Block};

/// The blocks' text without formatting: blocks a blank line apart, list items one per line
/// (`- `, `N. `, `[x] `), table cells tab-separated.
pub(super) fn plain_text(blocks: &[Block]) -> String {
    with_final_newline(plain_blocks(blocks))
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
            Block::Paragraph(inlines) | Block::Heading(_, inlines) => plain(inlines),
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
                        .map(|c| plain(c).replace('\n', " "))
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
