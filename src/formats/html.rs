//! HTML documents: the units of [`super::markup`] found by lol_html's tokenizer (the HTML5
//! tokenizer states: raw text in script and style, RCDATA in title and textarea, comments,
//! attributes with any quoting), with every byte outside a unit kept as written.
//!
//! Translated: the text of block elements (p, h1–h6, li, td, th, blockquote, figcaption, dt, dd,
//! title, div, ...), with inline elements (b, i, em, strong, a, span, sup, ...) as spans that do
//! not cut a sentence; the `alt`, `title`, `placeholder` and `aria-label` attributes; the
//! `content` of `<meta>` descriptions and titles. Kept as written: script, style, pre, code,
//! kbd, samp, var, textarea, svg, math, template, noscript, anything with `translate="no"` or
//! class `notranslate` and all their content, every other attribute, comments, the doctype.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use lol_html::html_content::TextType;
use lol_html::{doc_comments, doc_text, doctype, element, end_tag, HtmlRewriter, Settings};

use super::markup::{is_marker, Escape, Role, Unit, UnitBuilder};
use crate::error::{Error, Result};

/// Inline elements: inside a unit, they are spans.
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "big", "button", "cite", "data", "del", "dfn", "em", "font",
    "i", "ins", "label", "mark", "nobr", "q", "rb", "rp", "rt", "ruby", "s", "small", "span",
    "strike", "strong", "sub", "sup", "time", "tt", "u",
];

/// Void inline elements: a mark between words.
const MARKS: &[&str] = &["img", "wbr", "input", "embed"];

/// Elements kept as written with their content; inside a unit, the ones whose text reads as
/// words of the sentence keep those words in the model's input.
const OPAQUE_WORDS: &[&str] = &["code", "kbd", "samp", "var"];
const OPAQUE: &[&str] = &[
    "script",
    "style",
    "pre",
    "textarea",
    "svg",
    "math",
    "template",
    "noscript",
    "iframe",
    "object",
    "select",
    "xmp",
    "plaintext",
    "listing",
];

/// Void elements (no end tag, no content).
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Attributes whose value is text for a reader.
const TEXT_ATTRIBUTES: &[&str] = &["alt", "title", "placeholder", "aria-label"];

/// `<meta>` names and properties whose `content` is text for a reader.
const TEXT_META: &[&str] = &[
    "description",
    "og:title",
    "og:description",
    "twitter:title",
    "twitter:description",
];

/// One token of the source, with its byte range.
#[derive(Debug)]
enum Token {
    Start {
        name: String,
        range: Range<usize>,
        /// translate="no" or class notranslate.
        no_translate: bool,
        /// Attribute values to translate: (value as written, range of the value).
        texts: Vec<(String, Range<usize>)>,
        /// <meta> author/date, <time datetime>: (key, value).
        metadata: Option<(&'static str, String)>,
        self_closing: bool,
    },
    End {
        name: String,
        range: Range<usize>,
    },
    Text {
        range: Range<usize>,
        translatable: bool,
    },
    /// A comment, a doctype, or bytes the tokenizer reported nothing for.
    Other {
        range: Range<usize>,
        boundary: bool,
    },
}

impl Token {
    fn range(&self) -> &Range<usize> {
        match self {
            Token::Start { range, .. }
            | Token::End { range, .. }
            | Token::Text { range, .. }
            | Token::Other { range, .. } => range,
        }
    }
}

/// What a parse of an HTML document found.
#[derive(Debug, Default)]
pub(crate) struct HtmlParts {
    /// Text and attribute units, in source order.
    pub units: Vec<Unit>,
    /// Author and date from `<meta>` and `<time>`: (key, value).
    pub metadata: Vec<(&'static str, String)>,
}

/// The tokens of `source` (every byte of it in exactly one token).
fn tokens(source: &str, name: &str) -> Result<Vec<Token>> {
    let found: Rc<RefCell<Vec<Token>>> = Rc::default();
    {
        let elements = Rc::clone(&found);
        let texts = Rc::clone(&found);
        let comments = Rc::clone(&found);
        let doctypes = Rc::clone(&found);
        let mut rewriter = HtmlRewriter::new(
            Settings::new()
                .append_element_content_handler(element!("*", move |el| {
                    let name = el.tag_name();
                    let range = el.source_location().bytes();
                    let class_no = el
                        .get_attribute("class")
                        .is_some_and(|c| c.split_whitespace().any(|c| c == "notranslate"));
                    let no_translate = class_no
                        || el
                            .get_attribute("translate")
                            .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"));
                    let mut texts = Vec::new();
                    let meta_key = (name == "meta")
                        .then(|| {
                            el.get_attribute("name")
                                .or_else(|| el.get_attribute("property"))
                        })
                        .flatten()
                        .map(|k| k.trim().to_ascii_lowercase());
                    for a in el.attributes() {
                        let attr = a.name();
                        let wanted = TEXT_ATTRIBUTES.contains(&attr.as_str())
                            || (attr == "content"
                                && meta_key.as_deref().is_some_and(|k| TEXT_META.contains(&k)));
                        if let (true, Some(loc)) = (wanted, a.value_source_location()) {
                            texts.push((a.value(), loc.bytes()));
                        }
                    }
                    let metadata = match (name.as_str(), meta_key.as_deref()) {
                        ("meta", Some("author")) => {
                            el.get_attribute("content").map(|v| ("author", v))
                        }
                        ("meta", Some("article:published_time" | "date" | "dc.date")) => {
                            el.get_attribute("content").map(|v| ("date", v))
                        }
                        ("time", _) => el.get_attribute("datetime").map(|v| ("date", v)),
                        _ => None,
                    };
                    let self_closing = el.is_self_closing();
                    elements.borrow_mut().push(Token::Start {
                        name: name.clone(),
                        range,
                        no_translate,
                        texts,
                        metadata,
                        self_closing,
                    });
                    if !VOID.contains(&name.as_str()) && !self_closing {
                        let ends = Rc::clone(&elements);
                        el.on_end_tag(end_tag!(move |end| {
                            ends.borrow_mut().push(Token::End {
                                name: end.name(),
                                range: end.source_location().bytes(),
                            });
                            Ok(())
                        }))?;
                    }
                    Ok(())
                }))
                .append_document_content_handler(doc_text!(move |t| {
                    let translatable = matches!(t.text_type(), TextType::Data | TextType::RCData);
                    let range = t.source_location().bytes();
                    if !range.is_empty() {
                        texts.borrow_mut().push(Token::Text {
                            range,
                            translatable,
                        });
                    }
                    Ok(())
                }))
                .append_document_content_handler(doc_comments!(move |c| {
                    comments.borrow_mut().push(Token::Other {
                        range: c.source_location().bytes(),
                        boundary: false,
                    });
                    Ok(())
                }))
                .append_document_content_handler(doctype!(move |d| {
                    doctypes.borrow_mut().push(Token::Other {
                        range: d.source_location().bytes(),
                        boundary: true,
                    });
                    Ok(())
                })),
            |_: &[u8]| {},
        );
        let fail = |e: lol_html::errors::RewritingError| Error::Input {
            source_name: name.to_string(),
            message: format!("cannot read it as HTML: {e}"),
            remedy: None,
        };
        rewriter.write(source.as_bytes()).map_err(fail)?;
        rewriter.end().map_err(fail)?;
    }
    let mut found = Rc::try_unwrap(found)
        .map_err(|_| Error::Internal("HTML tokens still borrowed".into()))?
        .into_inner();
    found.sort_by_key(|t| t.range().start);
    // Bytes no token covers (a stray end tag, for one): kept as written, and a boundary.
    let mut out = Vec::with_capacity(found.len());
    let mut pos = 0;
    for t in found {
        let r = t.range().clone();
        if r.start < pos {
            continue;
        }
        if r.start > pos {
            out.push(gap(source, pos..r.start));
        }
        pos = r.end;
        out.push(t);
    }
    if pos < source.len() {
        out.push(gap(source, pos..source.len()));
    }
    Ok(out)
}

/// Bytes between the tokens the tokenizer reported: an end tag that closes nothing (kept in a
/// unit as a mark when it is an inline element's), or something else (a boundary).
fn gap(source: &str, range: Range<usize>) -> Token {
    let text = &source[range.clone()];
    let name = text
        .strip_prefix("</")
        .and_then(|t| t.strip_suffix('>'))
        .map(|n| n.trim().to_ascii_lowercase());
    let inline = name.is_some_and(|n| {
        n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && (INLINE.contains(&n.as_str()) || !is_known(&n))
    });
    Token::Other {
        range,
        boundary: !inline,
    }
}

/// Decodes character references (`&amp;`, `&eacute;`, `&#233;`).
fn decode(raw: &str) -> String {
    html_escape::decode_html_entities(raw).into_owned()
}

/// The role of text inside the block elements `blocks` (innermost last).
fn role_of(blocks: &[String]) -> Role {
    for b in blocks.iter().rev() {
        match b.as_str() {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => return Role::Heading,
            "li" | "dt" | "dd" => return Role::Item,
            "title" => return Role::Title,
            "p" | "td" | "th" | "blockquote" | "figcaption" | "caption" => return Role::Block,
            _ => {}
        }
    }
    Role::Block
}

/// Parses `source` (an HTML document or fragment) into its units; their ranges, and the spans'
/// markup, are byte ranges of `source` shifted by `offset`.
pub(crate) fn parse(source: &str, offset: usize, name: &str) -> Result<HtmlParts> {
    let tokens = tokens(source, name)?;
    let mut parts = HtmlParts::default();
    let mut unit = UnitBuilder::default();
    let mut role = Role::Block;
    // Names of the inline elements open in the unit, innermost last.
    let mut inline: Vec<String> = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let shift = |r: &Range<usize>| r.start + offset..r.end + offset;
    let mut i = 0;
    let flush =
        |unit: &mut UnitBuilder, inline: &mut Vec<String>, role: Role, parts: &mut HtmlParts| {
            if let Some(u) = std::mem::take(unit).finish(role, Escape::HtmlText) {
                parts.units.push(u);
            }
            inline.clear();
        };
    while i < tokens.len() {
        match &tokens[i] {
            Token::Text {
                range,
                translatable,
            } => {
                let raw = &source[range.clone()];
                if *translatable {
                    if !unit.has_text() {
                        role = role_of(&blocks);
                    }
                    unit.text(&decode(raw), shift(range), raw);
                } else {
                    flush(&mut unit, &mut inline, role, &mut parts);
                }
            }
            Token::Other { range, boundary } => {
                if *boundary {
                    flush(&mut unit, &mut inline, role, &mut parts);
                } else {
                    unit.opaque(shift(range), "");
                }
            }
            Token::End { name, range } => {
                if INLINE.contains(&name.as_str()) || !is_known(name) {
                    if let Some(depth) = inline.iter().rposition(|n| n == name) {
                        // Inner elements left open end here too, without end tags of their own.
                        while inline.len() > depth + 1 {
                            inline.pop();
                            unit.close(range.start + offset..range.start + offset);
                        }
                        inline.pop();
                        unit.close(shift(range));
                    } else {
                        unit.opaque(shift(range), "");
                    }
                } else {
                    flush(&mut unit, &mut inline, role, &mut parts);
                    if let Some(at) = blocks.iter().rposition(|b| b == name) {
                        blocks.truncate(at);
                    }
                }
            }
            Token::Start {
                name,
                range,
                no_translate,
                texts,
                metadata,
                self_closing,
            } => {
                if let Some(m) = metadata {
                    if !parts.metadata.iter().any(|(k, _)| *k == m.0) {
                        parts.metadata.push((m.0, m.1.trim().to_string()));
                    }
                }
                let n = name.as_str();
                let void = VOID.contains(&n) || *self_closing;
                let opaque = *no_translate || OPAQUE.contains(&n) || OPAQUE_WORDS.contains(&n);
                if opaque {
                    // Kept with its content, to its end tag.
                    let end = if void { i } else { matching_end(&tokens, i, n) };
                    let whole = range.start..tokens[end].range().end;
                    let inline_here = INLINE.contains(&n)
                        || OPAQUE_WORDS.contains(&n)
                        || MARKS.contains(&n)
                        || !is_known(n);
                    if inline_here {
                        let words: String = if OPAQUE_WORDS.contains(&n) || INLINE.contains(&n) {
                            tokens[i..=end]
                                .iter()
                                .filter_map(|t| match t {
                                    Token::Text { range, .. } => {
                                        Some(decode(&source[range.clone()]))
                                    }
                                    _ => None,
                                })
                                .collect()
                        } else {
                            String::new()
                        };
                        if !unit.has_text() && !words.trim().is_empty() {
                            role = role_of(&blocks);
                        }
                        unit.opaque(shift(&whole), &words);
                    } else {
                        flush(&mut unit, &mut inline, role, &mut parts);
                    }
                    i = end + 1;
                    continue;
                }
                for (value, r) in texts {
                    let mut b = UnitBuilder::default();
                    b.text(&decode(value), shift(r), value);
                    if let Some(u) = b.finish(Role::Extra, Escape::HtmlAttribute) {
                        parts.units.push(u);
                    }
                }
                if !void && (INLINE.contains(&n) || !is_known(n)) && unit.ends_with_word() {
                    // A note marker glued to its word (`<a href="#fn1">1</a>`, `<sup>2</sup>`):
                    // kept as written, not read by the model.
                    let end = matching_end(&tokens, i, n);
                    let marker = end == i + 2
                        && matches!(&tokens[i + 1], Token::Text { range: r, translatable: true }
                            if is_marker(&decode(&source[r.clone()])));
                    if marker {
                        unit.opaque(shift(&(range.start..tokens[end].range().end)), "");
                        i = end + 1;
                        continue;
                    }
                }
                if MARKS.contains(&n) {
                    unit.opaque(shift(range), "");
                } else if INLINE.contains(&n) || !is_known(n) {
                    if void {
                        unit.opaque(shift(range), "");
                    } else {
                        unit.open(shift(range));
                        inline.push(name.clone());
                    }
                } else {
                    flush(&mut unit, &mut inline, role, &mut parts);
                    if !void {
                        blocks.push(name.clone());
                    }
                }
            }
        }
        i += 1;
    }
    flush(&mut unit, &mut inline, role, &mut parts);
    parts.units.sort_by_key(|u| u.range.start);
    Ok(parts)
}

/// The index of the token that ends the element started at `start` (its end tag, or the last
/// token when it has none).
fn matching_end(tokens: &[Token], start: usize, name: &str) -> usize {
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(start + 1) {
        match t {
            Token::Start {
                name: n,
                self_closing,
                ..
            } if n == name && !self_closing => depth += 1,
            Token::End { name: n, .. } if n == name => {
                if depth == 0 {
                    return j;
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    tokens.len() - 1
}

/// Whether `name` is an HTML element this module knows (other names, like custom elements, are
/// taken as inline).
fn is_known(name: &str) -> bool {
    INLINE.contains(&name)
        || MARKS.contains(&name)
        || OPAQUE.contains(&name)
        || OPAQUE_WORDS.contains(&name)
        || VOID.contains(&name)
        || BLOCKS.contains(&name)
}

const BLOCKS: &[&str] = &[
    "html",
    "head",
    "body",
    "title",
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "caption",
    "colgroup",
    "blockquote",
    "figure",
    "figcaption",
    "section",
    "article",
    "aside",
    "header",
    "footer",
    "nav",
    "main",
    "address",
    "form",
    "fieldset",
    "legend",
    "details",
    "summary",
    "option",
    "optgroup",
    "menu",
    "dialog",
    "picture",
    "video",
    "audio",
    "canvas",
    "map",
    "center",
    "hgroup",
    "search",
    "frameset",
    "frame",
    "noframes",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn units(html: &str) -> Vec<(Role, String, String)> {
        parse(html, 0, "t")
            .unwrap()
            .units
            .into_iter()
            .map(|u| (u.role, u.text, html[u.range].to_string()))
            .collect()
    }

    #[test]
    fn blocks_are_units_and_inline_elements_do_not_cut_them() {
        let html = "<!DOCTYPE html><html><head><title>Kabinet &amp; Kamer</title></head>\n<body>\n<h1>Kabinet gevallen</h1>\n<p>\n  Het kabinet is <b>gisteren</b> <a href=\"/x\">gevallen</a>.\n</p><ul><li>Een</li><li>Twee <i>drie</i></li></ul></body></html>";
        let u = units(html);
        assert_eq!(
            u,
            [
                (
                    Role::Title,
                    "Kabinet & Kamer".into(),
                    "Kabinet &amp; Kamer".into()
                ),
                (
                    Role::Heading,
                    "Kabinet gevallen".into(),
                    "Kabinet gevallen".into()
                ),
                (
                    Role::Block,
                    "Het kabinet is gisteren gevallen.".into(),
                    "Het kabinet is <b>gisteren</b> <a href=\"/x\">gevallen</a>.".into()
                ),
                (Role::Item, "Een".into(), "Een".into()),
                (Role::Item, "Twee drie".into(), "Twee <i>drie</i>".into()),
            ]
        );
    }

    #[test]
    fn code_scripts_and_no_translate_parts_are_kept_as_written() {
        let html = "<p>Draai <code>tolk --help</code> nu.</p><script>var s = '<p>niet</p>';</script><pre>vast\n tekst</pre><div translate=\"no\">Naam <b>BV</b></div><p class=\"x notranslate\">Ook niet</p><style>p{}</style>";
        let u = parse(html, 0, "t").unwrap().units;
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].text, "Draai tolk --help nu.");
        assert!(u[0].spans[0].opaque);
        assert_eq!(
            &html[u[0].spans[0].open.clone()],
            "<code>tolk --help</code>"
        );
    }

    #[test]
    fn attributes_and_descriptions_are_units_of_their_own() {
        let html = "<meta name=\"description\" content=\"Het kabinet is gevallen\"><meta name=\"author\" content=\"Jan de Vries\"><meta name=\"viewport\" content=\"width=device-width\"><p>Zie <a href=\"/a\" title=\"Meer uitleg\">hier</a>.</p><img src=\"f.jpg\" alt='Foto van het Binnenhof'>";
        let parts = parse(html, 0, "t").unwrap();
        let texts: Vec<(Role, &str)> = parts
            .units
            .iter()
            .map(|u| (u.role, u.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                (Role::Extra, "Het kabinet is gevallen"),
                (Role::Block, "Zie hier."),
                (Role::Extra, "Meer uitleg"),
                (Role::Extra, "Foto van het Binnenhof"),
            ]
        );
        assert_eq!(parts.metadata, [("author", "Jan de Vries".to_string())]);
    }

    #[test]
    fn unclosed_and_stray_inline_tags_keep_the_unit_whole() {
        let html = "<p>Een <b>twee</p><p>drie</i> vier</p>";
        let u = units(html);
        assert_eq!(u[0].1, "Een twee");
        assert_eq!(u[0].2, "Een <b>twee");
        assert_eq!(u[1].1, "drie vier");
        assert_eq!(u[1].2, "drie</i> vier");
    }
}
