//! The text of office XML parts as [`super::markup`] units: WordprocessingML (DOCX),
//! DrawingML (PPTX slides and notes), OpenDocument (ODT, ODP) and the plain XML of EPUB
//! packages (`content.opf` titles, `toc.ncx` labels).
//!
//! A paragraph is a unit: its runs are joined, so a sentence is whole whatever way the editor
//! cut it into runs (Word cuts them inside words at spell-check and revision marks), and its
//! formatting comes back on the aligned target words:
//!
//! - OpenDocument marks formatting with inline elements (`text:span`, `text:a`), like HTML:
//!   they are spans, their tags written as they were.
//! - WordprocessingML and DrawingML give each run its own properties (`w:rPr`, `a:rPr`). Runs
//!   with the same properties are merged; the properties that hold the most text are the
//!   paragraph's base, every other set is a span, and the translation is written back as new
//!   runs: the base's properties on the words outside any span, a span's on its words.
//!   Hyperlinks, tracked insertions and smart tags are spans around their runs.
//!
//! Everything else inside a paragraph (fields, drawings, bookmarks, comments' anchors, tracked
//! deletions, footnote references, tabs and breaks) is kept as written, at the place the
//! alignment gives it; paragraphs inside it (text boxes, footnotes in OpenDocument) are units
//! of their own. Paragraph properties, and everything outside paragraphs, are not touched.

use std::collections::HashMap;
use std::ops::Range;

use super::markup::{is_marker, Escape, Role, Unit, UnitBuilder};
use super::xml::{self, matching_end, Token};
use crate::error::Result;

/// Which XML vocabulary a part is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// WordprocessingML: `w:p`, runs `w:r` with `w:rPr` and `w:t`.
    Word,
    /// DrawingML text: `a:p`, runs `a:r` with `a:rPr` and `a:t`.
    Drawing,
    /// OpenDocument text: `text:p`, `text:h`, inline `text:span` and `text:a`.
    Open,
    /// EPUB package metadata: `dc:title` and `dc:description`.
    Opf,
    /// EPUB NCX navigation: `text` labels.
    Ncx,
}

impl Dialect {
    fn is_paragraph(self, name: &str) -> bool {
        match self {
            Dialect::Word => name == "w:p",
            Dialect::Drawing => name == "a:p",
            Dialect::Open => name == "text:p" || name == "text:h",
            Dialect::Opf => name == "dc:title" || name == "dc:description",
            Dialect::Ncx => name == "text",
        }
    }

    fn run(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Dialect::Word => Some(("w:r", "w:rPr", "w:t")),
            Dialect::Drawing => Some(("a:r", "a:rPr", "a:t")),
            _ => None,
        }
    }

    /// Inline elements whose tags are written as they were around their content.
    fn is_container(self, name: &str) -> bool {
        match self {
            Dialect::Word => matches!(
                name,
                "w:hyperlink"
                    | "w:ins"
                    | "w:smartTag"
                    | "w:customXml"
                    | "w:moveTo"
                    | "w:dir"
                    | "w:bdo"
            ),
            Dialect::Open => matches!(
                name,
                "text:span" | "text:a" | "text:meta" | "text:ruby-base" | "text:hidden-text"
            ),
            _ => false,
        }
    }

    /// Elements that stand for white space between words, kept as written.
    fn is_break(self, name: &str) -> bool {
        match self {
            Dialect::Word => matches!(name, "w:tab" | "w:br" | "w:cr" | "w:ptab"),
            Dialect::Drawing => name == "a:br",
            Dialect::Open => matches!(name, "text:tab" | "text:line-break"),
            _ => false,
        }
    }

    /// Elements dropped: spell-check state and layout caches that the translation makes stale.
    fn is_stale(self, name: &str) -> bool {
        matches!(name, "w:proofErr" | "w:lastRenderedPageBreak")
    }

    /// Elements that are not part of the paragraph's running text and stay where they are:
    /// the paragraph's properties (first) and DrawingML's end-of-paragraph properties (last).
    fn is_fixed(self, name: &str) -> bool {
        matches!(name, "w:pPr" | "a:pPr" | "a:endParaRPr")
    }

    /// Elements whose content is never translated (comments, in OpenDocument inline).
    fn is_untouched(self, name: &str) -> bool {
        matches!(
            name,
            "office:annotation" | "office:annotation-end" | "w:del" | "w:moveFrom"
        )
    }

    /// Whether its paragraphs are runs with properties, rewritten by [`write_runs`].
    pub(crate) fn is_run(self) -> bool {
        self.run().is_some()
    }

    pub(crate) fn escape(self) -> Escape {
        Escape::Xml
    }
}

/// How a piece of a paragraph is written back in a run dialect ([`Dialect::Word`],
/// [`Dialect::Drawing`]), by the source position of the markup that stands for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunPiece {
    /// The start of a span of words with the properties `styles[id]`.
    Style(usize),
    /// The end of that span.
    EndStyle,
    /// A run's child other than text (a tab, a drawing), to be wrapped in a run with the
    /// properties `styles[id]`.
    Child(usize),
    /// (Subtitles) what lies between two cues' texts.
    Cue,
    /// A run of its own that stands for a space (a tab, a break): written as it was, and the
    /// space after it goes.
    Break,
}

/// What the runs of a part's paragraphs are rewritten from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    /// Run properties as written (`<w:rPr>..</w:rPr>`, or empty).
    pub styles: Vec<String>,
    /// By source position.
    pub pieces: HashMap<usize, RunPiece>,
    /// By a unit's start: its base style.
    pub base: HashMap<usize, usize>,
    /// Each style's key (what shows of it, [`style_key`]).
    pub keys: Vec<String>,
    /// Style ids by their properties as written.
    pub index: HashMap<String, usize>,
}

/// The units of one XML part: paragraphs (with `offset` added to every range) and, for run
/// dialects, what the runs are rewritten from. `part` names the part in errors.
pub(crate) fn parse(
    source: &str,
    offset: usize,
    dialect: Dialect,
    part: &str,
    runs: &mut Runs,
) -> Result<Vec<Unit>> {
    let tokens = xml::tokens(source, part)?;
    let mut walker = Walker {
        source,
        tokens: &tokens,
        offset,
        dialect,
        part,
        runs,
        units: Vec::new(),
        title_shape: false,
        list_depth: 0,
        depth: 0,
    };
    walker.walk(0, tokens.len(), false)?;
    let mut units = walker.units;
    units.sort_by_key(|u| u.range.start);
    Ok(units)
}

/// One piece of a paragraph, in order.
enum Item {
    /// Text of a run or of the paragraph: (decoded, token range, run range, style).
    Text {
        text: String,
        range: Range<usize>,
        run: Range<usize>,
        style: Option<StyleRef>,
    },
    /// White space that is not kept as markup (`text:s`).
    Space,
    /// Kept as written: its range, the words it reads as, whether it also stands for a space,
    /// and the style of the run it must be wrapped in (a run's child).
    Mark {
        range: Range<usize>,
        words: String,
        space: bool,
        wrap: Option<usize>,
    },
    /// A container's start and end tags.
    Open(Range<usize>),
    Close(Range<usize>),
}

impl Item {
    /// Markup kept as written where the alignment puts it, reading as no words.
    fn mark(range: Range<usize>) -> Item {
        Item::Mark {
            range,
            words: String::new(),
            space: false,
            wrap: None,
        }
    }
}

/// A run's properties: the style id, the markup that opens a span of it (the properties, or
/// the run's start tag when it has none), and the run's end tag.
#[derive(Clone)]
struct StyleRef {
    id: usize,
    open: Range<usize>,
    close: Range<usize>,
}

struct Walker<'a> {
    source: &'a str,
    tokens: &'a [Token],
    offset: usize,
    dialect: Dialect,
    part: &'a str,
    runs: &'a mut Runs,
    units: Vec<Unit>,
    /// Inside a DrawingML shape that is a title placeholder.
    title_shape: bool,
    list_depth: usize,
    /// How many walks are under way (paragraphs inside drawings inside paragraphs ...).
    depth: usize,
}

/// The deepest nesting of paragraphs inside other paragraphs' content that is read.
const MAX_DEPTH: usize = 32;

impl Walker<'_> {
    fn shift(&self, r: &Range<usize>) -> Range<usize> {
        r.start + self.offset..r.end + self.offset
    }

    fn text_of(&self, r: &Range<usize>) -> &str {
        &self.source[r.clone()]
    }

    /// Finds the paragraphs in tokens `lo..hi`. `fallback`: inside `mc:Fallback`, a copy of
    /// content shown elsewhere (its paragraphs are translated, but not read as the article).
    fn walk(&mut self, lo: usize, hi: usize, fallback: bool) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(crate::error::Error::Input {
                source_name: self.part.to_string(),
                message: format!(
                    "paragraphs nested more than {MAX_DEPTH} deep (text boxes in text boxes ...); such files are refused"
                ),
                remedy: None,
            });
        }
        let done = self.walk_in(lo, hi, fallback);
        self.depth -= 1;
        done
    }

    fn walk_in(&mut self, lo: usize, hi: usize, fallback: bool) -> Result<()> {
        let mut i = lo;
        while i < hi {
            match &self.tokens[i] {
                Token::Start { name, range, .. } => {
                    if self.dialect.is_paragraph(name) {
                        let end = matching_end(self.tokens, i).min(hi - 1);
                        self.paragraph(i, end, fallback)?;
                        i = end + 1;
                        continue;
                    }
                    if self.dialect.is_untouched(name) {
                        i = matching_end(self.tokens, i) + 1;
                        continue;
                    }
                    match name.as_str() {
                        "p:ph" => {
                            let tag = self.text_of(range);
                            let ty = xml::attribute(tag, "type").unwrap_or_default();
                            self.title_shape = ty == "title" || ty == "ctrTitle";
                        }
                        "text:list-item" => self.list_depth += 1,
                        "mc:Fallback" => {
                            let end = matching_end(self.tokens, i).min(hi - 1);
                            self.walk(i + 1, end, true)?;
                            i = end + 1;
                            continue;
                        }
                        _ => {}
                    }
                }
                Token::End { name, .. } => match name.as_str() {
                    "p:sp" => self.title_shape = false,
                    "text:list-item" => self.list_depth = self.list_depth.saturating_sub(1),
                    _ => {}
                },
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    /// The paragraph whose start tag is `tokens[start]` and end tag `tokens[end]`.
    fn paragraph(&mut self, start: usize, end: usize, fallback: bool) -> Result<()> {
        let mut role = match (self.dialect, &self.tokens[start]) {
            (Dialect::Open, Token::Start { name, .. }) if name == "text:h" => Role::Heading,
            (Dialect::Opf, Token::Start { name, .. }) if name == "dc:title" => Role::Title,
            (Dialect::Opf | Dialect::Ncx, _) => Role::Extra,
            (Dialect::Drawing, _) if self.title_shape => Role::Heading,
            (Dialect::Open, _) if self.list_depth > 0 => Role::Item,
            _ => Role::Block,
        };
        let mut items = Vec::new();
        let mut i = start + 1;
        while i < end {
            let tok = &self.tokens[i];
            let r = tok.range().clone();
            match tok {
                Token::Text { .. } | Token::Cdata { .. } => {
                    // Text straight in the paragraph (OpenDocument, metadata); white space
                    // between elements in a run dialect is layout.
                    let raw = match tok {
                        Token::Cdata { content, .. } => content.clone(),
                        _ => r.clone(),
                    };
                    let text = if matches!(tok, Token::Cdata { .. }) {
                        self.text_of(&raw).to_string()
                    } else {
                        xml::decode(self.text_of(&raw), self.part)?
                    };
                    if self.dialect.run().is_none() {
                        items.push(Item::Text {
                            text,
                            range: r.clone(),
                            run: r,
                            style: None,
                        });
                    }
                    i += 1;
                }
                Token::Other { .. } => {
                    items.push(Item::mark(r));
                    i += 1;
                }
                Token::End { name, .. } => {
                    if self.dialect.is_container(name) {
                        items.push(Item::Close(r));
                    } else {
                        items.push(Item::mark(r));
                    }
                    i += 1;
                }
                Token::Start { name, empty, .. } => {
                    let close = matching_end(self.tokens, i).min(end - 1);
                    let whole = r.start..self.tokens[close].range().end;
                    let n = name.as_str();
                    if self.dialect.is_fixed(n) {
                        if n == "w:pPr" {
                            let props = self.text_of(&whole);
                            if props.contains("<w:numPr") {
                                role = Role::Item;
                            } else if let Some(style) = xml::attribute(
                                &props[props.find("<w:pStyle").unwrap_or(props.len())..],
                                "w:val",
                            ) {
                                let s = style.to_ascii_lowercase();
                                if s == "title" {
                                    role = Role::Title;
                                } else if s.starts_with("heading") || s.starts_with("kop") {
                                    role = Role::Heading;
                                }
                            }
                        }
                        i = close + 1;
                        continue;
                    }
                    if self.dialect.is_stale(n) {
                        i = close + 1;
                        continue;
                    }
                    if self.dialect.run().is_some_and(|(run, _, _)| run == n) {
                        if !*empty {
                            i = self.run(i, close, &mut items)?;
                            continue;
                        }
                    } else if n == "text:s" {
                        let count = xml::attribute(self.text_of(&r), "text:c")
                            .and_then(|c| c.parse::<usize>().ok())
                            .unwrap_or(1);
                        if count > 1 {
                            items.push(Item::Mark {
                                range: r,
                                words: String::new(),
                                space: true,
                                wrap: None,
                            });
                        } else {
                            items.push(Item::Space);
                        }
                        i = close + 1;
                        continue;
                    } else if self.dialect.is_container(n) && !*empty {
                        items.push(Item::Open(r));
                        i += 1;
                        continue;
                    }
                    // Anything else is kept as written; paragraphs inside it are units of
                    // their own.
                    let space = self.dialect.is_break(n);
                    if !self.dialect.is_untouched(n) && close > i {
                        self.walk(i + 1, close, fallback)?;
                    }
                    items.push(Item::Mark {
                        range: whole,
                        words: String::new(),
                        space,
                        wrap: None,
                    });
                    i = close + 1;
                }
            }
        }
        if fallback {
            role = Role::Extra;
        }
        self.build(items, role);
        Ok(())
    }

    /// A run from its start tag `tokens[start]` to its end tag `tokens[end]`; returns the
    /// token after it. A complex field (`w:fldChar` begin .. end) is taken whole, with the
    /// runs it spans, as one mark that reads as its result.
    fn run(&mut self, start: usize, end: usize, items: &mut Vec<Item>) -> Result<usize> {
        let (_, props_name, text_name) = self.dialect.run().expect("a run dialect");
        let run_range = self.tokens[start].range().start..self.tokens[end].range().end;
        let mut props: Option<Range<usize>> = None;
        let mut pieces: Vec<Item> = Vec::new();
        let mut has_text = false;
        let mut j = start + 1;
        while j < end {
            let tok = &self.tokens[j];
            let r = tok.range().clone();
            match tok {
                Token::Start { name, .. } => {
                    let close = matching_end(self.tokens, j).min(end);
                    let whole = r.start..self.tokens[close].range().end;
                    if name == props_name {
                        props = Some(whole);
                    } else if name == text_name {
                        for t in self.tokens.get(j + 1..close).unwrap_or(&[]) {
                            let text = match t {
                                Token::Text { range } => {
                                    xml::decode(self.text_of(range), self.part)?
                                }
                                Token::Cdata { content, .. } => self.text_of(content).to_string(),
                                _ => continue,
                            };
                            has_text |= !text.is_empty();
                            pieces.push(Item::Text {
                                text,
                                range: t.range().clone(),
                                run: run_range.clone(),
                                style: None,
                            });
                        }
                    } else if name == "w:fldChar"
                        && xml::attribute(self.text_of(&r), "w:fldCharType").as_deref()
                            == Some("begin")
                    {
                        return self.field(start, items);
                    } else if !self.dialect.is_stale(name) {
                        pieces.push(Item::Mark {
                            range: whole,
                            words: String::new(),
                            space: self.dialect.is_break(name),
                            wrap: Some(usize::MAX),
                        });
                    }
                    j = close + 1;
                }
                _ => j += 1,
            }
        }
        if !has_text {
            // Nothing to translate in it: kept whole where it is (paragraphs inside, as in a
            // text box, are units of their own).
            self.walk(start + 1, end, false)?;
            items.push(Item::Mark {
                range: run_range,
                words: String::new(),
                space: pieces
                    .iter()
                    .any(|p| matches!(p, Item::Mark { space: true, .. })),
                wrap: None,
            });
            return Ok(end + 1);
        }
        let props_text = props.as_ref().map_or("", |p| self.text_of(p)).to_string();
        let id = self.style_id(&props_text);
        let style = StyleRef {
            id,
            open: props.unwrap_or_else(|| self.tokens[start].range().clone()),
            close: self.tokens[end].range().clone(),
        };
        for p in pieces {
            items.push(match p {
                Item::Text {
                    text, range, run, ..
                } => Item::Text {
                    text,
                    range,
                    run,
                    style: Some(style.clone()),
                },
                Item::Mark {
                    range,
                    words,
                    space,
                    ..
                } => Item::Mark {
                    range,
                    words,
                    space,
                    wrap: Some(id),
                },
                other => other,
            });
        }
        Ok(end + 1)
    }

    /// A complex field whose first run is `tokens[start]`: to the run that ends it, one mark
    /// that reads as the field's result text.
    fn field(&mut self, start: usize, items: &mut Vec<Item>) -> Result<usize> {
        let mut depth = 0usize;
        let mut result = false;
        let mut words = String::new();
        let mut last = start;
        // The end of the run holding the `separate` of this field.
        let mut separate_end: Option<usize> = None;
        let run_end = |from: usize| {
            (from..self.tokens.len())
                .find(|&k| {
                    self.tokens[k].name() == Some("w:r")
                        && matches!(self.tokens[k], Token::End { .. })
                })
                .unwrap_or(from)
        };
        let mut j = start;
        while j < self.tokens.len() {
            let tok = &self.tokens[j];
            let boundary = match tok {
                Token::Start { name, .. } => name == "w:p" || name == "w:pPr",
                Token::End { name, .. } => name == "w:p",
                _ => false,
            };
            if boundary {
                // A field that goes on in later paragraphs (a table of contents): only its code
                // (to its `separate`) is taken; its result here is read as text.
                last = separate_end.unwrap_or_else(|| matching_end(self.tokens, start));
                words.clear();
                break;
            }
            if let Token::Start { name, range, .. } = tok {
                if name == "w:fldChar" {
                    match xml::attribute(self.text_of(range), "w:fldCharType").as_deref() {
                        Some("begin") => depth += 1,
                        Some("separate") if depth == 1 => {
                            result = true;
                            separate_end = Some(run_end(j));
                        }
                        Some("end") => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                last = run_end(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let (Token::Text { range }, true) = (tok, result && depth == 1) {
                if j > 0 && self.tokens[j - 1].name() == Some("w:t") {
                    words.push_str(&xml::decode(self.text_of(range), self.part)?);
                }
            }
            last = j;
            j += 1;
        }
        let range = self.tokens[start].range().start..self.tokens[last].range().end;
        items.push(Item::Mark {
            range,
            words,
            space: false,
            wrap: None,
        });
        Ok(last + 1)
    }

    fn style_id(&mut self, props: &str) -> usize {
        if let Some(&i) = self.runs.index.get(props) {
            return i;
        }
        self.runs.styles.push(props.to_string());
        self.runs.keys.push(style_key(props));
        let id = self.runs.styles.len() - 1;
        self.runs.index.insert(props.to_string(), id);
        id
    }

    /// The unit of a paragraph's items.
    fn build(&mut self, items: Vec<Item>, role: Role) {
        let items = note_markers(items);
        // Properties that only differ in language or spell-check flags are the same.
        // The keys of the styles this paragraph uses (not all the part's: that would make a
        // long document quadratic).
        let keys: HashMap<usize, String> = items
            .iter()
            .filter_map(|it| match it {
                Item::Text { style: Some(s), .. } => Some((s.id, self.runs.keys[s.id].clone())),
                _ => None,
            })
            .collect();
        let key_of = |id: usize| keys.get(&id).cloned().unwrap_or_default();
        let mut weight: HashMap<String, (usize, usize)> = HashMap::new();
        for (n, it) in items.iter().enumerate() {
            if let Item::Text {
                text,
                style: Some(s),
                ..
            } = it
            {
                let e = weight.entry(key_of(s.id)).or_insert((0, n));
                e.0 += text.chars().filter(|c| !c.is_whitespace()).count();
            }
        }
        let base_key = weight
            .iter()
            .max_by_key(|(_, (w, first))| (*w, std::cmp::Reverse(*first)))
            .map(|(k, _)| k.clone());
        let base_id = items.iter().find_map(|it| match it {
            Item::Text { style: Some(s), .. } if Some(key_of(s.id)) == base_key => Some(s.id),
            _ => None,
        });
        let mut b = UnitBuilder::default();
        // The style span open now: its key and the end tag of its last run so far.
        let mut open: Option<(String, Range<usize>)> = None;
        let close_style = |b: &mut UnitBuilder,
                           open: &mut Option<(String, Range<usize>)>,
                           runs: &mut Runs,
                           offset: usize| {
            if let Some((_, close)) = open.take() {
                let c = close.start + offset..close.end + offset;
                runs.pieces.insert(c.start, RunPiece::EndStyle);
                b.close(c);
            }
        };
        for it in items {
            match it {
                Item::Text {
                    text,
                    range,
                    run,
                    style,
                } => {
                    let raw = self.source[range.clone()].to_string();
                    if let Some(s) = &style {
                        let key = key_of(s.id);
                        let same = open.as_ref().is_some_and(|(k, _)| *k == key);
                        if !same {
                            close_style(&mut b, &mut open, self.runs, self.offset);
                            if Some(&key) != base_key.as_ref() {
                                let o = self.shift(&s.open);
                                self.runs.pieces.insert(o.start, RunPiece::Style(s.id));
                                b.open(o);
                                open = Some((key, s.close.clone()));
                            }
                        } else if let Some((_, close)) = &mut open {
                            *close = s.close.clone();
                        }
                        b.cover(self.shift(&run));
                    }
                    let text: String = text
                        .chars()
                        .map(|c| {
                            if ('\u{fdd0}'..='\u{fddf}').contains(&c) {
                                '\u{fffd}'
                            } else {
                                c
                            }
                        })
                        .collect();
                    b.text(&text, self.shift(&range), &raw);
                }
                Item::Space => b.text(" ", 0..0, " "),
                Item::Mark {
                    range,
                    words,
                    space,
                    wrap,
                } => {
                    if space {
                        b.text(" ", 0..0, " ");
                    }
                    let r = self.shift(&range);
                    if space && wrap.is_none() && self.dialect.is_run() {
                        self.runs.pieces.insert(r.start, RunPiece::Break);
                    }
                    if let Some(id) = wrap {
                        let id = if id == usize::MAX {
                            base_id.unwrap_or(0)
                        } else {
                            id
                        };
                        self.runs.pieces.insert(r.start, RunPiece::Child(id));
                    }
                    b.opaque(r, &words);
                }
                Item::Open(r) => {
                    close_style(&mut b, &mut open, self.runs, self.offset);
                    b.open(self.shift(&r));
                }
                Item::Close(r) => {
                    close_style(&mut b, &mut open, self.runs, self.offset);
                    if !b.close(self.shift(&r)) {
                        b.opaque(self.shift(&r), "");
                    }
                }
            }
        }
        close_style(&mut b, &mut open, self.runs, self.offset);
        if let Some(u) = b.finish(role, self.dialect.escape()) {
            if let Some(id) = base_id {
                self.runs.base.insert(u.range.start, id);
            }
            self.units.push(u);
        }
    }
}

/// Note markers glued to the word before them in formatting of their own (a superscript
/// footnote number, a link to a note) made marks kept as written: the model does not read
/// them and the words around them keep their own formatting.
fn note_markers(items: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    let glued = |out: &[Item]| matches!(out.last(), Some(Item::Text { text, .. }) if text.ends_with(|c: char| !c.is_whitespace()));
    let mut it = items.into_iter().peekable();
    while let Some(item) = it.next() {
        match item {
            Item::Text {
                text,
                run,
                style: Some(s),
                ..
            } if is_marker(&text)
                && glued(&out)
                && matches!(out.last(), Some(Item::Text { style: Some(p), .. }) if p.id != s.id)
                && !it.peek().is_some_and(|next| match next {
                    Item::Text { run: r, .. } => *r == run,
                    Item::Mark { range, .. } => range.start >= run.start && range.end <= run.end,
                    _ => false,
                }) =>
            {
                out.push(Item::mark(run));
            }
            Item::Open(open) if glued(&out) => {
                // An element around nothing but a marker.
                let mut ahead: Vec<Item> = Vec::new();
                let mut whole = None;
                if let Some(Item::Text { text, .. }) = it.peek() {
                    if is_marker(text) {
                        ahead.push(it.next().expect("peeked"));
                        if let Some(Item::Close(c)) = it.peek() {
                            whole = Some(open.start..c.end);
                            it.next();
                        }
                    }
                }
                match whole {
                    Some(range) => out.push(Item::mark(range)),
                    None => {
                        out.push(Item::Open(open));
                        out.extend(ahead);
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Run properties compared without what does not show: the language, spell-check and
/// revision marks.
fn style_key(props: &str) -> String {
    let Ok(tokens) = xml::tokens(props, "") else {
        return props.to_string();
    };
    let mut key = String::new();
    for (k, t) in tokens.iter().enumerate() {
        let text = &props[t.range().clone()];
        match t {
            Token::Start { name, .. }
                if matches!(
                    name.as_str(),
                    "w:lang" | "w:noProof" | "w:spellStart" | "w:spellEnd"
                ) => {}
            // The properties element itself: only its attributes (DrawingML's `b="1"`).
            Token::End { .. } if k + 1 == tokens.len() => {}
            Token::Start { .. } => {
                let parts = split_attributes(text.trim_end_matches(['>', '/']));
                let skip = usize::from(k == 0);
                for part in parts.iter().skip(skip) {
                    let name = part.split('=').next().unwrap_or("").trim();
                    let noise = matches!(
                        name,
                        "lang"
                            | "altLang"
                            | "dirty"
                            | "err"
                            | "smtClean"
                            | "noProof"
                            | "spc"
                            | "kern"
                    ) || name.starts_with("w:rsid");
                    if !noise {
                        key.push_str(part);
                    }
                }
                if k > 0 {
                    key.push('>');
                }
            }
            _ => key.push_str(text),
        }
    }
    key
}

/// A start tag cut at the white space between attributes (quotes respected).
fn split_attributes(tag: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote = None;
    let mut from = 0;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                out.push(&tag[from..i]);
                from = i;
            }
            _ => {}
        }
    }
    out.push(&tag[from..]);
    out
}

/// Markers that [`super::Markup::render`] puts around the markup it copies into a unit of a
/// run dialect, so that [`write_runs`] knows each piece by its source position:
/// `MARK position MARK_END bytes MARK_CLOSE`.
pub(crate) const MARK: char = '\u{fdd5}';
pub(crate) const MARK_END: char = '\u{fdd6}';
pub(crate) const MARK_CLOSE: char = '\u{fdd7}';

/// A piece of a unit rendered with markers: text as the writer wrote it, or copied markup with
/// the source position it was copied from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marked<'a> {
    Text(&'a str),
    Markup { pos: usize, body: &'a str },
}

/// The pieces of a rendering with markers, in order (an unfinished marker is text).
pub(crate) fn marked(rendered: &str) -> Vec<Marked<'_>> {
    let mut out = Vec::new();
    let mut rest = rendered;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len_utf8()..];
        let found = after.find(MARK_END).and_then(|e| {
            let pos = after[..e].parse().ok()?;
            let from = e + MARK_END.len_utf8();
            // The copied markup may hold rendered units (a text box), never markers of this one.
            let c = after[from..].find(MARK_CLOSE)?;
            Some((pos, from, from + c))
        });
        let Some((pos, from, to)) = found else {
            break;
        };
        if at > 0 {
            out.push(Marked::Text(&rest[..at]));
        }
        out.push(Marked::Markup {
            pos,
            body: &after[from..to],
        });
        rest = &after[to + MARK_CLOSE.len_utf8()..];
    }
    if !rest.is_empty() {
        out.push(Marked::Text(rest));
    }
    out
}

/// A unit's rendering with markers made into runs: the words outside any style span in runs
/// with the unit's base properties, a style span's words in runs with its properties, a run's
/// child wrapped in a run, other markup as written.
pub(crate) fn write_runs(
    rendered: &str,
    dialect: Dialect,
    runs: &Runs,
    base: Option<usize>,
) -> String {
    let Some((run, _, text)) = dialect.run() else {
        return rendered.to_string();
    };
    let mut out = String::with_capacity(rendered.len() * 2);
    let mut stack: Vec<usize> = Vec::new();
    let mut pending = String::new();
    let style = |stack: &[usize]| stack.last().copied().or(base);
    let props = |id: Option<usize>| {
        id.and_then(|i| runs.styles.get(i))
            .map_or("", String::as_str)
    };
    let flush = |pending: &mut String, out: &mut String, id: Option<usize>| {
        if pending.is_empty() {
            return;
        }
        let space = if dialect == Dialect::Word {
            " xml:space=\"preserve\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<{run}>{}<{text}{space}>{pending}</{text}></{run}>",
            props(id)
        ));
        pending.clear();
    };
    // A tab or break stands for the space between its words: the space written after it goes.
    let mut after_break = false;
    for piece in marked(rendered) {
        let (pos, body) = match piece {
            Marked::Text(t) => {
                pending.push_str(if after_break {
                    t.strip_prefix(' ').unwrap_or(t)
                } else {
                    t
                });
                after_break = false;
                continue;
            }
            Marked::Markup { pos, body } => (pos, body),
        };
        after_break = false;
        let name = body
            .trim_start_matches('<')
            .split(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .next()
            .unwrap_or("");
        if dialect.is_break(name) {
            after_break = true;
        }
        flush(&mut pending, &mut out, style(&stack));
        match runs.pieces.get(&pos) {
            Some(RunPiece::Style(id)) => stack.push(*id),
            Some(RunPiece::EndStyle) => {
                stack.pop();
            }
            Some(RunPiece::Child(id)) => {
                out.push_str(&format!("<{run}>{}{body}</{run}>", props(Some(*id))));
            }
            Some(RunPiece::Break) => {
                out.push_str(body);
                after_break = true;
            }
            Some(RunPiece::Cue) | None => out.push_str(body),
        }
    }
    flush(&mut pending, &mut out, style(&stack));
    out
}

/// A language tag for `code` in the form office files use (`en-US`), keeping the form of the
/// tag it replaces: a bare code for a bare code.
fn tag_for(code: &str, replaced: &str) -> String {
    if !replaced.contains('-') {
        return code.to_string();
    }
    let region = match code {
        "en" => "US",
        "nl" => "NL",
        "de" => "DE",
        "fr" => "FR",
        "es" => "ES",
        "it" => "IT",
        "pt" => "PT",
        "zh" => "CN",
        "ja" => "JP",
        "ko" => "KR",
        "ru" => "RU",
        "pl" => "PL",
        "sv" => "SE",
        "da" => "DK",
        "fi" => "FI",
        "uk" => "UA",
        "tr" => "TR",
        "ar" => "SA",
        _ => return code.to_string(),
    };
    format!("{code}-{region}")
}

/// The part with its language tags for `source` (primary subtag) made `target`'s: Word's
/// `w:lang` and `w:themeFontLang` values, DrawingML's `lang` and `altLang`, OpenDocument's
/// `fo:language` with its `fo:country`, an XHTML root's `lang` and `xml:lang`, an EPUB's
/// `dc:language`; tags for other languages (a quotation in French) are left as they are.
pub(crate) fn retag(part: &str, source: &str, target: &str) -> String {
    let Ok(tokens) = xml::tokens(part, "") else {
        return part.to_string();
    };
    let primary = |v: &str| {
        v.split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let source = primary(source);
    if source.is_empty() || source == primary(target) {
        return part.to_string();
    }
    let mut out = String::with_capacity(part.len());
    let mut in_dc_language = false;
    for t in &tokens {
        let text = &part[t.range().clone()];
        match t {
            Token::Start { name, .. } => {
                let names: &[&str] = match name.as_str() {
                    "w:lang" | "w:themeFontLang" => &["w:val", "w:eastAsia", "w:bidi"],
                    "html" => &["lang", "xml:lang"],
                    n if n.starts_with("a:") => &["lang", "altLang"],
                    _ if text.contains("fo:language=") => &["fo:language"],
                    _ => &[],
                };
                in_dc_language = name == "dc:language";
                if names.is_empty() {
                    out.push_str(text);
                    continue;
                }
                let body = text.trim_end_matches('>');
                let (body, close) = match body.strip_suffix('/') {
                    Some(b) => (b, "/>"),
                    None => (body, ">"),
                };
                let mut country = false;
                let mut tag = String::new();
                for (k, a) in split_attributes(body).into_iter().enumerate() {
                    let (an, value) = match a.split_once('=') {
                        Some((n, v)) if k > 0 => (n.trim(), v.trim().trim_matches(['"', '\''])),
                        _ => {
                            tag.push_str(a);
                            continue;
                        }
                    };
                    let lead = &a[..a.len() - a.trim_start().len()];
                    if names.contains(&an) && primary(value) == source {
                        tag.push_str(&format!("{lead}{an}=\"{}\"", tag_for(target, value)));
                        country = an == "fo:language";
                    } else {
                        tag.push_str(a);
                    }
                }
                if country {
                    // The country of the old language goes with it.
                    let region = tag_for(target, "x-x");
                    let region = region.split('-').nth(1).unwrap_or("");
                    tag = replace_attribute(&tag, "fo:country", region);
                }
                out.push_str(&tag);
                out.push_str(close);
            }
            Token::Text { .. } if in_dc_language && primary(text.trim()) == source => {
                out.push_str(&tag_for(target, text.trim()));
            }
            _ => {
                in_dc_language &= matches!(t, Token::Text { .. });
                out.push_str(text);
            }
        }
    }
    out
}

/// `tag` with attribute `name`'s value made `value` (when it has one).
fn replace_attribute(tag: &str, name: &str, value: &str) -> String {
    let mut out = String::new();
    for (k, a) in split_attributes(tag).into_iter().enumerate() {
        match a.split_once('=') {
            Some((n, _)) if k > 0 && n.trim() == name && !value.is_empty() => {
                let lead = &a[..a.len() - a.trim_start().len()];
                out.push_str(&format!("{lead}{name}=\"{value}\""));
            }
            _ => out.push_str(a),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(xml: &str, dialect: Dialect) -> (Vec<Unit>, Runs) {
        let mut runs = Runs::default();
        let u = parse(xml, 0, dialect, "t.xml", &mut runs).unwrap();
        (u, runs)
    }

    #[test]
    fn runs_are_joined_and_their_properties_are_spans() {
        let xml = r#"<w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:rPr><w:lang w:val="nl-NL"/></w:rPr><w:t xml:space="preserve">Ik heb </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>kof</w:t></w:r><w:proofErr w:type="spellStart"/><w:r><w:rPr><w:b/></w:rPr><w:t>fie</w:t></w:r><w:r><w:t xml:space="preserve"> gedronken.</w:t></w:r><w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:t>1</w:t></w:r></w:p>"#;
        let (u, runs) = units(xml, Dialect::Word);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].text, "Ik heb koffie gedronken.");
        assert_eq!(u[0].role, Role::Heading);
        // Bold is the one span; the note number a mark kept as written.
        let bold: Vec<_> = u[0].spans.iter().filter(|s| !s.opaque).collect();
        assert_eq!(bold.len(), 1);
        assert_eq!(&u[0].text[bold[0].text.clone()], "koffie");
        let marks: Vec<_> = u[0].spans.iter().filter(|s| s.opaque).collect();
        assert_eq!(marks.len(), 1);
        assert!(xml[marks[0].open.clone()].contains(">1</w:t>"));
        assert_eq!(runs.styles.len(), 4);
    }

    #[test]
    fn language_tags_follow_the_translation() {
        let w =
            r#"<w:rPr><w:lang w:val="nl-NL" w:eastAsia="zh-CN"/></w:rPr><w:lang w:val="fr-FR"/>"#;
        assert_eq!(
            retag(w, "nl", "en"),
            r#"<w:rPr><w:lang w:val="en-US" w:eastAsia="zh-CN"/></w:rPr><w:lang w:val="fr-FR"/>"#
        );
        let a = r#"<a:rPr lang="nl-NL" altLang="en-US" dirty="0"/>"#;
        assert_eq!(
            retag(a, "nl", "en"),
            r#"<a:rPr lang="en-US" altLang="en-US" dirty="0"/>"#
        );
        let o = r#"<style:text-properties fo:language="nl" fo:country="NL" style:language-asian="zh"/>"#;
        assert_eq!(
            retag(o, "nl", "en"),
            r#"<style:text-properties fo:language="en" fo:country="US" style:language-asian="zh"/>"#
        );
        let e = r#"<html xmlns="x" xml:lang="nl" lang="nl"><dc:language>nl</dc:language>"#;
        assert_eq!(
            retag(e, "nl", "en"),
            r#"<html xmlns="x" xml:lang="en" lang="en"><dc:language>en</dc:language>"#
        );
        assert_eq!(retag(w, "en", "en"), w);
    }

    #[test]
    fn drawing_note_marker_after_punctuation() {
        let xml = r#"<a:p><a:r><a:rPr/><a:t>Naar het </a:t></a:r><a:r><a:rPr i="1"/><a:t>strand</a:t></a:r><a:r><a:rPr/><a:t>.</a:t></a:r><a:r><a:rPr baseline="30000"><a:hlinkClick r:id="rId3"/></a:rPr><a:t>1</a:t></a:r><a:endParaRPr/></a:p>"#;
        let (u, _) = units(xml, Dialect::Drawing);
        assert_eq!(u[0].text, "Naar het strand.");
        assert!(!xml[u[0].range.clone()].contains("endParaRPr"));
    }
}
