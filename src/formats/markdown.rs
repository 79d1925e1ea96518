//! Markdown documents: the units of [`super::markup`] found by pulldown-cmark (CommonMark with
//! tables, strikethrough, footnotes, task lists and front matter), every byte outside a unit kept
//! as written.
//!
//! Translated: headings, paragraphs, list items, block quotes and table cells, with emphasis,
//! strong, strikethrough, links and images as spans (a link's target and an image's source stay
//! as written; an image's alt text is translated). Kept as written: code blocks, inline code,
//! autolinks, front matter, math; HTML blocks go through the HTML path.

use std::ops::Range;

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

use super::html;
use super::markup::{Escape, Role, Unit, UnitBuilder};
use crate::error::Result;

/// The parser's options: what the document may contain.
pub(crate) fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS
}

/// An inline element being read: its whole range, and whether its start markup is written yet.
struct Open {
    range: Range<usize>,
    opened: bool,
}

/// Parses `source` into its units.
pub(crate) fn parse(source: &str, name: &str) -> Result<Vec<Unit>> {
    let mut units = Vec::new();
    let mut unit = UnitBuilder::default();
    let mut role = Role::Block;
    let mut blocks: Vec<Role> = Vec::new();
    let mut inline: Vec<Open> = Vec::new();
    // Inside a code block, front matter or an HTML block: nothing is translated here.
    let mut verbatim = 0usize;
    // An autolink, kept whole: its range, and the depth of links inside it.
    let mut kept: Option<Range<usize>> = None;
    let mut last_end = 0usize;
    let flush =
        |unit: &mut UnitBuilder, inline: &mut Vec<Open>, role: Role, units: &mut Vec<Unit>| {
            if let Some(u) = std::mem::take(unit).finish(role, Escape::Markdown) {
                units.push(u);
            }
            inline.clear();
        };
    for (event, range) in Parser::new_ext(source, options()).into_offset_iter() {
        if let Some(k) = &kept {
            if range.end <= k.end && !matches!(event, Event::End(TagEnd::Link)) {
                continue;
            }
            if matches!(event, Event::End(TagEnd::Link)) {
                unit.opaque(k.clone(), "");
                kept = None;
                last_end = range.end;
                continue;
            }
        }
        // The start markup of the innermost element ends where its first child begins.
        if verbatim == 0 && !matches!(event, Event::End(_)) {
            if let Some(o) = inline.last_mut().filter(|o| !o.opened) {
                o.opened = true;
                unit.open(o.range.start..range.start);
            }
        }
        match event {
            Event::Start(tag) => match tag {
                Tag::CodeBlock(_) | Tag::MetadataBlock(_) => {
                    flush(&mut unit, &mut inline, role, &mut units);
                    verbatim += 1;
                }
                Tag::HtmlBlock => {
                    flush(&mut unit, &mut inline, role, &mut units);
                    verbatim += 1;
                    units.extend(html::parse(&source[range.clone()], range.start, name)?.units);
                }
                Tag::Emphasis
                | Tag::Strong
                | Tag::Strikethrough
                | Tag::Superscript
                | Tag::Subscript
                | Tag::Image { .. } => {
                    if verbatim == 0 {
                        inline.push(Open {
                            range: range.clone(),
                            opened: false,
                        });
                    }
                }
                Tag::Link { link_type, .. } => {
                    if verbatim == 0 {
                        if matches!(link_type, LinkType::Autolink | LinkType::Email) {
                            kept = Some(range.clone());
                        } else {
                            inline.push(Open {
                                range: range.clone(),
                                opened: false,
                            });
                        }
                    }
                }
                other => {
                    flush(&mut unit, &mut inline, role, &mut units);
                    blocks.push(match other {
                        Tag::Heading { .. } => Role::Heading,
                        Tag::Item => Role::Item,
                        _ => Role::Block,
                    });
                }
            },
            Event::End(end) => match end {
                TagEnd::CodeBlock | TagEnd::MetadataBlock(_) | TagEnd::HtmlBlock => {
                    verbatim = verbatim.saturating_sub(1);
                }
                TagEnd::Emphasis
                | TagEnd::Strong
                | TagEnd::Strikethrough
                | TagEnd::Superscript
                | TagEnd::Subscript
                | TagEnd::Link
                | TagEnd::Image => {
                    if verbatim == 0 {
                        if let Some(o) = inline.pop() {
                            if o.opened {
                                unit.close(last_end.max(o.range.start)..range.end);
                            } else {
                                // Nothing inside: kept whole.
                                unit.opaque(o.range, "");
                            }
                        }
                    }
                }
                _ => {
                    flush(&mut unit, &mut inline, role, &mut units);
                    blocks.pop();
                }
            },
            _ if verbatim > 0 => {}
            Event::Text(text) => {
                if !unit.has_text() {
                    role = blocks.last().copied().unwrap_or(Role::Block);
                }
                unit.text(&text, range.clone(), &source[range.clone()]);
            }
            Event::Code(code) => {
                if !unit.has_text() {
                    role = blocks.last().copied().unwrap_or(Role::Block);
                }
                unit.opaque(range.clone(), &code);
            }
            Event::SoftBreak => unit.text(" ", range.clone(), " "),
            Event::HardBreak
            | Event::InlineHtml(_)
            | Event::InlineMath(_)
            | Event::DisplayMath(_)
            | Event::FootnoteReference(_)
            | Event::TaskListMarker(_) => unit.opaque(range.clone(), ""),
            Event::Html(_) => {}
            Event::Rule => flush(&mut unit, &mut inline, role, &mut units),
        }
        last_end = range.end;
    }
    flush(&mut unit, &mut inline, role, &mut units);
    units.sort_by_key(|u| u.range.start);
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(md: &str) -> Vec<(Role, String, String)> {
        parse(md, "t")
            .unwrap()
            .into_iter()
            .map(|u| (u.role, u.text, md[u.range].to_string()))
            .collect()
    }

    #[test]
    fn blocks_are_units_and_code_and_targets_are_kept() {
        let md = "---\ntitel: x\n---\n\n# Kabinet *gevallen*\n\nHet kabinet is **gisteren** [gevallen](https://nos.nl \"NOS\").\nDat zei `de premier`.\n\n- Een\n- Twee <https://x.nl>\n\n```\ncode hier\n```\n\n> Een citaat\n> over twee regels.\n\n| Kop | Cel |\n|---|---|\n| een | twee |\n";
        let u = units(md);
        let texts: Vec<(&Role, &str)> = u.iter().map(|(r, t, _)| (r, t.as_str())).collect();
        assert_eq!(
            texts,
            [
                (&Role::Heading, "Kabinet gevallen"),
                (
                    &Role::Block,
                    "Het kabinet is gisteren gevallen. Dat zei de premier."
                ),
                (&Role::Item, "Een"),
                (&Role::Item, "Twee"),
                (&Role::Block, "Een citaat over twee regels."),
                (&Role::Block, "Kop"),
                (&Role::Block, "Cel"),
                (&Role::Block, "een"),
                (&Role::Block, "twee"),
            ]
        );
        assert_eq!(u[0].2, "Kabinet *gevallen*");
        assert_eq!(
            u[1].2,
            "Het kabinet is **gisteren** [gevallen](https://nos.nl \"NOS\").\nDat zei `de premier`."
        );
        let p = &parse(md, "t").unwrap()[1];
        let markup: Vec<(&str, &str)> = p
            .spans
            .iter()
            .map(|s| (&md[s.open.clone()], &md[s.close.clone()]))
            .collect();
        assert_eq!(
            markup,
            [
                ("**", "**"),
                ("[", "](https://nos.nl \"NOS\")"),
                ("`de premier`", "")
            ]
        );
    }

    #[test]
    fn html_blocks_go_through_the_html_path() {
        let md = "Tekst.\n\n<div>\n<p>Een <b>alinea</b>.</p>\n</div>\n";
        let u = units(md);
        assert_eq!(u[1].1, "Een alinea.");
        assert_eq!(u[1].2, "Een <b>alinea</b>.");
    }
}
