//! [`Block`]s to and from the Yjs XML that TipTap's collaboration extension (y-prosemirror)
//! keeps in `XmlFragment('default')`: one `XmlElement` per node, named as the node type, its
//! attributes the node's (`level`, `start`, `checked`, `language`); text in `XmlText` whose
//! formatting attributes are the marks (`bold: {}`, `link: {href}`).
//!
//! Reading is lenient: an element it does not know gives its text (as paragraphs), so no
//! content an editor wrote is hidden from `cat`.

use std::collections::HashMap;
use std::sync::Arc;

use yrs::any::Number;
use yrs::types::text::YChange;
use yrs::types::Attrs;
use yrs::{
    Any, Out, ReadTxn, Text, TransactionMut, Xml, XmlElementPrelim, XmlElementRef, XmlFragment,
    XmlOut, XmlTextPrelim, XmlTextRef,
};

use super::model::{push_text, Block, Inline, Marks, MAX_DEPTH};

/// The blocks of one child of the fragment (usually one).
pub fn read_node<T: ReadTxn>(node: &XmlOut, txn: &T) -> Vec<Block> {
    read_node_at(node, txn, 0)
}

/// Every block of a fragment or element.
pub fn read_children<T: ReadTxn>(parent: &impl XmlFragment, txn: &T) -> Vec<Block> {
    children_at(parent, txn, 0)
}

fn read_node_at<T: ReadTxn>(node: &XmlOut, txn: &T, depth: usize) -> Vec<Block> {
    match node {
        XmlOut::Element(el) => read_element(el, txn, depth),
        XmlOut::Text(text) => {
            let mut inlines = Vec::new();
            read_text(text, txn, &mut inlines);
            paragraph_unless_empty(inlines)
        }
        XmlOut::Fragment(fragment) => children_at(fragment, txn, depth),
    }
}

fn children_at<T: ReadTxn>(parent: &impl XmlFragment, txn: &T, depth: usize) -> Vec<Block> {
    parent
        .children(txn)
        .flat_map(|child| read_node_at(&child, txn, depth))
        .collect()
}

/// All the text under an element, in order, without recursion: what is left of structure
/// nested deeper than [`MAX_DEPTH`] (a hostile peer's, say).
fn text_of<T: ReadTxn>(el: &XmlElementRef, txn: &T) -> String {
    let mut text = String::new();
    let mut stack: Vec<XmlOut> = el.children(txn).collect();
    stack.reverse();
    while let Some(node) = stack.pop() {
        match node {
            XmlOut::Text(t) => {
                let mut inlines = Vec::new();
                read_text(&t, txn, &mut inlines);
                text.push_str(&super::model::plain(&inlines));
            }
            XmlOut::Element(e) => {
                let mut children: Vec<XmlOut> = e.children(txn).collect();
                children.reverse();
                stack.extend(children);
            }
            XmlOut::Fragment(f) => {
                let mut children: Vec<XmlOut> = f.children(txn).collect();
                children.reverse();
                stack.extend(children);
            }
        }
    }
    text
}

fn paragraph_unless_empty(inlines: Vec<Inline>) -> Vec<Block> {
    if inlines.is_empty() {
        Vec::new()
    } else {
        vec![Block::Paragraph(inlines)]
    }
}

fn read_element<T: ReadTxn>(el: &XmlElementRef, txn: &T, depth: usize) -> Vec<Block> {
    // A block that holds no blocks (text with its marks, code, a rule) is read as itself at any
    // depth, as the Markdown parser keeps it: reading it recurses no further.
    let leaf = matches!(
        el.tag().as_ref(),
        "paragraph" | "heading" | "codeBlock" | "horizontalRule"
    );
    if depth >= MAX_DEPTH && !leaf {
        let mut inlines = Vec::new();
        push_text(&mut inlines, &text_of(el, txn), &Marks::default());
        return paragraph_unless_empty(inlines);
    }
    let depth = depth + 1;
    let read_children = |parent: &XmlElementRef| children_at(parent, txn, depth);
    let block = match el.tag().as_ref() {
        "paragraph" => Block::Paragraph(read_inlines(el, txn, 0)),
        "heading" => {
            let level = number(el.get_attribute(txn, "level"))
                .unwrap_or(1)
                .clamp(1, 6);
            Block::Heading(level as u8, read_inlines(el, txn, 0))
        }
        "bulletList" => Block::BulletList(items(el, txn, depth)),
        "orderedList" => {
            let start = number(el.get_attribute(txn, "start")).unwrap_or(1);
            Block::OrderedList(start, items(el, txn, depth))
        }
        "taskList" => Block::TaskList(
            elements(el, txn)
                .map(|item| {
                    let checked = matches!(
                        item.get_attribute(txn, "checked"),
                        Some(Out::Any(Any::Bool(true)))
                    );
                    (checked, read_children(&item))
                })
                .collect(),
        ),
        "blockquote" => Block::Quote(read_children(el)),
        "codeBlock" => {
            let language = match el.get_attribute(txn, "language") {
                Some(Out::Any(Any::String(s))) if !s.is_empty() => Some(s.to_string()),
                _ => None,
            };
            Block::Code(language, super::model::plain(&read_inlines(el, txn, 0)))
        }
        "horizontalRule" => Block::Rule,
        "table" => Block::Table(
            elements(el, txn)
                .map(|row| {
                    elements(&row, txn)
                        .map(|cell| cell_inlines(&read_children(&cell)))
                        .collect()
                })
                .collect(),
        ),
        // An image as a block: a link to it.
        "image" => return paragraph_unless_empty(image_link(el, txn)),
        // Unknown: its text, so that nothing an editor wrote is hidden.
        _ => {
            let blocks = read_children(el);
            return if blocks.is_empty() {
                paragraph_unless_empty(read_inlines(el, txn, 0))
            } else {
                blocks
            };
        }
    };
    vec![block]
}

fn elements<'a, T: ReadTxn>(
    el: &XmlElementRef,
    txn: &'a T,
) -> impl Iterator<Item = XmlElementRef> + 'a {
    el.children(txn).filter_map(|child| match child {
        XmlOut::Element(el) => Some(el),
        _ => None,
    })
}

fn items<T: ReadTxn>(el: &XmlElementRef, txn: &T, depth: usize) -> Vec<Vec<Block>> {
    elements(el, txn)
        .map(|item| children_at(&item, txn, depth))
        .collect()
}

/// A table cell's paragraphs as one line of inlines (a Markdown cell is one line).
fn cell_inlines(blocks: &[Block]) -> Vec<Inline> {
    let mut out = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push(Inline::Break);
        }
        let inlines = match block {
            Block::Paragraph(inlines) | Block::Heading(_, inlines) => inlines.clone(),
            other => vec![Inline::Text(
                super::markdown::render_block(other),
                Marks::default(),
            )],
        };
        for inline in inlines {
            match inline {
                Inline::Text(text, marks) => push_text(&mut out, &text, &marks),
                Inline::Break => out.push(Inline::Break),
            }
        }
    }
    out
}

fn number(value: Option<Out>) -> Option<u64> {
    match value? {
        Out::Any(Any::Number(Number::Int(n))) => u64::try_from(n).ok(),
        Out::Any(Any::Number(Number::Float(f))) if f >= 0.0 && f.fract() == 0.0 => Some(f as u64),
        Out::Any(Any::String(s)) => s.parse().ok(),
        _ => None,
    }
}

fn image_link<T: ReadTxn>(el: &XmlElementRef, txn: &T) -> Vec<Inline> {
    let text = |name| match el.get_attribute(txn, name) {
        Some(Out::Any(Any::String(s))) => s.to_string(),
        _ => String::new(),
    };
    let (src, alt) = (text("src"), text("alt"));
    let label = if alt.is_empty() { src.clone() } else { alt };
    let mut out = Vec::new();
    let marks = Marks {
        link: Some(src),
        ..Marks::default()
    };
    push_text(&mut out, &label, &marks);
    out
}

fn read_inlines<T: ReadTxn>(el: &XmlElementRef, txn: &T, depth: usize) -> Vec<Inline> {
    let mut out = Vec::new();
    for child in el.children(txn) {
        match child {
            XmlOut::Text(text) => read_text(&text, txn, &mut out),
            XmlOut::Element(inner) => match inner.tag().as_ref() {
                "hardBreak" => out.push(Inline::Break),
                "image" => out.extend(image_link(&inner, txn)),
                _ if depth >= MAX_DEPTH => {
                    push_text(&mut out, &text_of(&inner, txn), &Marks::default())
                }
                // An inline node we do not know: its text.
                _ => {
                    for inline in read_inlines(&inner, txn, depth + 1) {
                        match inline {
                            Inline::Text(text, marks) => push_text(&mut out, &text, &marks),
                            Inline::Break => out.push(Inline::Break),
                        }
                    }
                }
            },
            XmlOut::Fragment(_) => {}
        }
    }
    out
}

fn read_text<T: ReadTxn>(text: &XmlTextRef, txn: &T, out: &mut Vec<Inline>) {
    for diff in text.diff(txn, YChange::identity) {
        if let Out::Any(Any::String(chunk)) = &diff.insert {
            let marks = diff.attributes.as_deref().map(marks_of).unwrap_or_default();
            push_text(out, chunk, &marks);
        }
    }
}

fn marks_of(attrs: &Attrs) -> Marks {
    let on = |name: &str| attrs.get(name).is_some_and(|v| !matches!(v, Any::Null));
    let link = match attrs.get("link") {
        Some(Any::Map(map)) => match map.get("href") {
            Some(Any::String(href)) => Some(href.to_string()),
            _ => None,
        },
        Some(Any::String(href)) => Some(href.to_string()),
        _ => None,
    };
    Marks {
        bold: on("bold"),
        italic: on("italic"),
        strike: on("strike"),
        underline: on("underline"),
        code: on("code"),
        link,
    }
}

/// A mark's attributes as y-prosemirror stores them: the mark's own attributes, `{}` for none.
fn attrs_of(marks: &Marks) -> Attrs {
    let empty = || Any::Map(Arc::new(HashMap::new()));
    let mut attrs = Attrs::new();
    for (on, name) in [
        (marks.bold, "bold"),
        (marks.italic, "italic"),
        (marks.strike, "strike"),
        (marks.underline, "underline"),
        (marks.code, "code"),
    ] {
        if on {
            attrs.insert(name.into(), empty());
        }
    }
    if let Some(href) = &marks.link {
        let link = HashMap::from([("href".to_string(), Any::String(href.as_str().into()))]);
        attrs.insert("link".into(), Any::Map(Arc::new(link)));
    }
    attrs
}

/// Inserts `blocks` into `parent` at `index`.
pub fn write_blocks(
    parent: &impl XmlFragment,
    txn: &mut TransactionMut,
    index: u32,
    blocks: &[Block],
) {
    for (i, block) in blocks.iter().enumerate() {
        write_block(parent, txn, index + i as u32, block);
    }
}

fn int(n: u64) -> Any {
    Any::Number(Number::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn write_block(parent: &impl XmlFragment, txn: &mut TransactionMut, index: u32, block: &Block) {
    let element = |txn: &mut TransactionMut, tag: &str| {
        parent.insert(txn, index, XmlElementPrelim::empty(tag))
    };
    match block {
        Block::Paragraph(inlines) => {
            let el = element(txn, "paragraph");
            write_inlines(&el, txn, inlines);
        }
        Block::Heading(level, inlines) => {
            let el = element(txn, "heading");
            el.insert_attribute(txn, "level", int(u64::from(*level)));
            write_inlines(&el, txn, inlines);
        }
        Block::BulletList(items) => {
            let el = element(txn, "bulletList");
            write_items(&el, txn, "listItem", items.iter().map(|i| (None, i)));
        }
        Block::OrderedList(start, items) => {
            let el = element(txn, "orderedList");
            el.insert_attribute(txn, "start", int(*start));
            write_items(&el, txn, "listItem", items.iter().map(|i| (None, i)));
        }
        Block::TaskList(items) => {
            let el = element(txn, "taskList");
            write_items(
                &el,
                txn,
                "taskItem",
                items.iter().map(|(c, i)| (Some(*c), i)),
            );
        }
        Block::Quote(blocks) => {
            let el = element(txn, "blockquote");
            write_blocks(&el, txn, 0, blocks);
        }
        Block::Code(language, code) => {
            let el = element(txn, "codeBlock");
            if let Some(language) = language {
                el.insert_attribute(txn, "language", Any::String(language.as_str().into()));
            }
            if !code.is_empty() {
                let text = el.push_back(txn, XmlTextPrelim::new(""));
                text.insert_with_attributes(txn, 0, code, Attrs::new());
            }
        }
        Block::Rule => {
            element(txn, "horizontalRule");
        }
        Block::Table(rows) => {
            let el = element(txn, "table");
            for (r, cells) in rows.iter().enumerate() {
                let row = el.push_back(txn, XmlElementPrelim::empty("tableRow"));
                let tag = if r == 0 { "tableHeader" } else { "tableCell" };
                for inlines in cells {
                    let cell = row.push_back(txn, XmlElementPrelim::empty(tag));
                    // TipTap's defaults, so its editor finds nothing to add.
                    cell.insert_attribute(txn, "colspan", int(1));
                    cell.insert_attribute(txn, "rowspan", int(1));
                    let paragraph = cell.push_back(txn, XmlElementPrelim::empty("paragraph"));
                    write_inlines(&paragraph, txn, inlines);
                }
            }
        }
    }
}

fn write_items<'a>(
    list: &XmlElementRef,
    txn: &mut TransactionMut,
    tag: &str,
    items: impl Iterator<Item = (Option<bool>, &'a Vec<Block>)>,
) {
    for (checked, blocks) in items {
        let item = list.push_back(txn, XmlElementPrelim::empty(tag));
        if let Some(checked) = checked {
            item.insert_attribute(txn, "checked", Any::Bool(checked));
        }
        // A list item's schema starts with a paragraph.
        if !matches!(blocks.first(), Some(Block::Paragraph(_))) {
            item.push_back(txn, XmlElementPrelim::empty("paragraph"));
        }
        let at = item.len(txn);
        write_blocks(&item, txn, at, blocks);
    }
}

fn write_inlines(el: &XmlElementRef, txn: &mut TransactionMut, inlines: &[Inline]) {
    let mut text: Option<XmlTextRef> = None;
    for inline in inlines {
        match inline {
            Inline::Break => {
                el.push_back(txn, XmlElementPrelim::empty("hardBreak"));
                text = None;
            }
            Inline::Text(chunk, marks) => {
                let node = match &text {
                    Some(node) => node.clone(),
                    None => {
                        let node = el.push_back(txn, XmlTextPrelim::new(""));
                        text = Some(node.clone());
                        node
                    }
                };
                let at = node.len(txn);
                node.insert_with_attributes(txn, at, chunk, attrs_of(marks));
            }
        }
    }
}
