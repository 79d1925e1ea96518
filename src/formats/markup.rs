//! Marked-up documents (HTML, Markdown) as the pipeline sees them: the document's source, and in
//! it the *units* whose text is translated. Everything outside a unit is copied byte for byte.
//!
//! A unit is a run of text with its inline markup (bold, links, inline code, ...) between two
//! block boundaries: a paragraph, a heading, a list item, a table cell, an attribute's value.
//! Its text, without the markup and on one line, is what the segmenter and the model see, so
//! that an inline element never cuts a sentence. The inline markup is kept as [`Span`]s over the
//! text; after translation each span is put back on the target words that the decoder's
//! cross-attention aligns with its source words ([`crate::translate::Translation::alignment`]),
//! a span that covers a whole sentence wraps the whole translation, and where the alignment says
//! nothing the span keeps its relative place.

use std::ops::Range;

/// What a unit is, for the article that the segmenter and the summary read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The document's title (`<title>`): a headline of its own.
    Title,
    /// A heading (h1–h6, `#`): a headline line.
    Heading,
    /// A paragraph, table cell, quote, caption, ...
    Block,
    /// A list item.
    Item,
    /// An attribute value (alt, title, a page description): translated, but not part of the
    /// article that is summarised.
    Extra,
}

/// How the translation of a unit is written into the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// HTML text: `&`, `<` and `>` as character references.
    HtmlText,
    /// An HTML attribute value: `&`, `<`, `>`, `"` and `'` as character references.
    HtmlAttribute,
    /// Markdown inline text: markup characters backslash-escaped.
    Markdown,
}

/// A piece of inline markup over a unit's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    /// The bytes of the unit's text it covers (empty: a mark between two words, like an image).
    pub text: Range<usize>,
    /// Source bytes written before the covered words (`<b>`, `[`, `**`); for an opaque span,
    /// the whole element, written instead of the covered words.
    pub open: Range<usize>,
    /// Source bytes written after them (`</b>`, `](https://...)`); empty when the source has none.
    pub close: Range<usize>,
    /// Kept as written (inline code, `translate="no"`): its source replaces the target words
    /// aligned with its text.
    pub opaque: bool,
}

/// A translated run of text in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The source bytes that the translation replaces.
    pub range: Range<usize>,
    /// What it is.
    pub role: Role,
    /// The text: markup removed, character references decoded, white space collapsed to single
    /// spaces, none at either end.
    pub text: String,
    /// Its inline markup, in source order (an element before the elements inside it).
    pub spans: Vec<Span>,
    /// How its translation is written.
    pub escape: Escape,
}

/// Builds a unit's text and spans while a parser walks its content.
#[derive(Debug, Default)]
pub(crate) struct UnitBuilder {
    text: String,
    spans: Vec<Span>,
    /// Spans still open: their index in `spans`.
    open: Vec<usize>,
    start: Option<usize>,
    end: usize,
}

impl UnitBuilder {
    /// Whether the unit has text yet.
    pub fn has_text(&self) -> bool {
        !self.text.is_empty()
    }

    /// Marks `range` of the source as part of the unit.
    pub fn cover(&mut self, range: Range<usize>) {
        if self.start.is_none() {
            self.start = Some(range.start);
        }
        self.end = self.end.max(range.end);
    }

    /// Appends decoded text, collapsing white space. `range` is the source it came from, its
    /// white space at either end left out of the unit unless text follows.
    pub fn text(&mut self, decoded: &str, range: Range<usize>, raw: &str) {
        if decoded.chars().all(char::is_whitespace) {
            if self.has_text() && !self.text.ends_with(' ') {
                self.text.push(' ');
            }
            return;
        }
        let lead = raw.len() - raw.trim_start().len();
        let trail = raw.len() - raw.trim_end().len();
        let start = (range.start + lead).min(range.end);
        let end = range.end.saturating_sub(trail).max(start);
        self.cover(start..end);
        for c in decoded.chars() {
            if c.is_whitespace() && c != '\u{a0}' {
                if self.has_text() && !self.text.ends_with(' ') {
                    self.text.push(' ');
                }
            } else {
                self.text.push(c);
            }
        }
    }

    /// Opens an inline element whose start markup is `open`.
    pub fn open(&mut self, open: Range<usize>) {
        self.cover(open.clone());
        let at = self.text.len();
        self.spans.push(Span {
            text: at..at,
            open,
            close: 0..0,
            opaque: false,
        });
        self.open.push(self.spans.len() - 1);
    }

    /// Closes the innermost open element with `close`; `false` (and nothing done) when none is
    /// open.
    pub fn close(&mut self, close: Range<usize>) -> bool {
        let Some(i) = self.open.pop() else {
            return false;
        };
        self.cover(close.clone());
        let end = self.text.trim_end_matches(' ').len();
        let span = &mut self.spans[i];
        span.text.end = end.max(span.text.start);
        span.close = close;
        true
    }

    /// A part of the source kept as written; `text` is what the model reads in its place
    /// (empty: nothing, like an image or a comment).
    pub fn opaque(&mut self, source: Range<usize>, text: &str) {
        self.cover(source.clone());
        let start = self.text.len();
        for c in text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
        {
            self.text.push(c);
        }
        self.spans.push(Span {
            text: start..self.text.len(),
            open: source,
            close: 0..0,
            opaque: true,
        });
    }

    /// The unit, if it has any text; white space trimmed, spans left open closed at its end.
    pub fn finish(mut self, role: Role, escape: Escape) -> Option<Unit> {
        let trimmed = self.text.trim_end().len();
        self.text.truncate(trimmed);
        let start = self.start?;
        if self.text.is_empty() {
            return None;
        }
        let len = self.text.len();
        for i in self.open.drain(..) {
            self.spans[i].text.end = len;
        }
        for s in &mut self.spans {
            s.text.start = s.text.start.min(len);
            s.text.end = s.text.end.clamp(s.text.start, len);
        }
        Some(Unit {
            range: start..self.end.max(start),
            role,
            text: self.text,
            spans: self.spans,
            escape,
        })
    }
}

/// One sentence of a unit and its translation, as the pipeline gave them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnitSentence {
    /// Where the sentence starts in the unit's text (a byte offset).
    pub start: usize,
    /// Its source text (as in the unit's text).
    pub source: String,
    /// Its translation.
    pub translation: String,
    /// For each word of the translation, the word of `source` it is aligned with.
    pub alignment: Option<Vec<Option<usize>>>,
}

/// The byte ranges of the space-separated words of `text`.
fn words(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c == ' ' {
            if let Some(s) = start.take() {
                out.push(s..i);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

/// A unit's translation with its markup put back, as text in the unit's syntax (escaped).
/// `source` is the whole document (the spans' markup is copied from it through `markup`, which
/// writes a source range, translating what it holds: an attribute inside a link's start tag).
pub(crate) fn render_unit(
    unit: &Unit,
    sentences: &[UnitSentence],
    markup: &mut dyn FnMut(Range<usize>, &mut String),
) -> String {
    let source_words = words(&unit.text);
    // Target words, their source word (unit-wide), and which sentence they are in.
    let mut target: Vec<&str> = Vec::new();
    let mut aligned: Vec<Option<usize>> = Vec::new();
    // Per sentence: its source words and its target words, as unit-wide index ranges.
    let mut parts: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    for s in sentences {
        let first = source_words.partition_point(|w| w.start < s.start);
        let n_source = s.source.split_whitespace().count();
        let t: Vec<&str> = s.translation.split_whitespace().collect();
        let t_start = target.len();
        let alignment = s
            .alignment
            .as_ref()
            .filter(|a| a.len() == t.len() && a.iter().flatten().all(|&w| w < n_source));
        for (i, _) in t.iter().enumerate() {
            let w = match alignment {
                Some(a) => a[i],
                // No alignment: the same relative place.
                None if n_source > 0 => Some(i * n_source / t.len().max(1)),
                None => None,
            };
            aligned.push(w.map(|w| w + first));
        }
        target.extend(t);
        parts.push((first..first + n_source, t_start..target.len()));
    }
    let n_target = target.len();
    let n_source = source_words.len();

    // Each span's target words, nested as its source is.
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(unit.spans.len());
    // Ancestors: (source text range, target range, target ranges of its children so far).
    type Ancestor = (Range<usize>, Range<usize>, Vec<Range<usize>>);
    let mut stack: Vec<Ancestor> = Vec::new();
    let mut root_placed: Vec<Range<usize>> = Vec::new();
    for span in &unit.spans {
        while let Some((text, _, _)) = stack.last() {
            if span.text.start >= text.start
                && span.text.end <= text.end
                && !(span.text.is_empty() && span.text.start == text.end && !text.is_empty())
            {
                break;
            }
            stack.pop();
        }
        let covered: Vec<usize> = (0..n_source)
            .filter(|&w| {
                let r = &source_words[w];
                r.start < span.text.end && r.end > span.text.start
            })
            .collect();
        let mut range = if covered.is_empty() {
            // A mark between words: after the target word aligned with the source word before
            // it, or at the start.
            let before = source_words.iter().rposition(|w| w.end <= span.text.start);
            let at = match before {
                Some(b) => aligned
                    .iter()
                    .rposition(|a| a.is_some_and(|a| a <= b))
                    .map_or(0, |t| t + 1),
                None => 0,
            };
            at..at
        } else {
            let (lo, hi) = (covered[0], covered[covered.len() - 1]);
            let mut hits: Vec<usize> = (0..n_target)
                .filter(|&t| aligned[t].is_some_and(|a| a >= lo && a <= hi))
                .collect();
            // A sentence it covers whole: all of its translation.
            for (src, tgt) in &parts {
                if !src.is_empty() && src.start >= lo && src.end <= hi + 1 {
                    hits.extend(tgt.clone());
                }
            }
            match (hits.iter().min(), hits.iter().max()) {
                (Some(&a), Some(&b)) => a..b + 1,
                _ => {
                    let a = lo * n_target / n_source.max(1);
                    let b = ((hi + 1) * n_target).div_ceil(n_source.max(1));
                    a.min(n_target)..b.clamp(a + 1, n_target.max(a + 1)).min(n_target)
                }
            }
        };
        // Inside the parent, and apart from its other children (siblings may change order, as
        // words do, but never overlap).
        let (lower, upper) = match stack.last() {
            Some((_, parent, _)) => (parent.start, parent.end),
            None => (0, n_target),
        };
        range.start = range.start.clamp(lower, upper);
        range.end = range.end.clamp(range.start, upper);
        let placed = match stack.last_mut() {
            Some((_, _, placed)) => placed,
            None => &mut root_placed,
        };
        let range = carve(range, placed);
        placed.push(range.clone());
        stack.push((span.text.clone(), range.clone(), Vec::new()));
        ranges.push(range);
    }

    let tree = Tree {
        unit,
        target: &target,
        ranges: &ranges,
        kids: children(&unit.spans, &ranges),
    };
    let mut w = Writer {
        out: String::new(),
        sep: false,
        skip_lead: None,
        markup,
    };
    let mut top: Vec<usize> = (0..unit.spans.len())
        .filter(|&s| !tree.kids.iter().any(|k| k.contains(&s)))
        .collect();
    top.sort_by_key(|&c| (ranges[c].start, !ranges[c].is_empty(), c));
    let tail = tree.write(0, n_target, &top, false, &mut w);
    w.text(&tail, unit.escape);
    w.out
}

/// The largest part of `range` that overlaps none of `placed` (the left one of two equal
/// parts); where nothing is left, an empty range where it would have started.
fn carve(mut range: Range<usize>, placed: &[Range<usize>]) -> Range<usize> {
    loop {
        let Some(p) = placed
            .iter()
            .find(|p| !p.is_empty() && p.start < range.end && range.start < p.end)
        else {
            return range;
        };
        let left = range.start..p.start.max(range.start);
        let right = p.end.min(range.end)..range.end;
        range = if left.len() >= right.len() && !left.is_empty() {
            left
        } else if !right.is_empty() {
            right
        } else {
            let at = p.end.min(range.end);
            return at..at;
        };
    }
}

/// Every span's children, from the nesting of their source texts and target ranges.
fn children(spans: &[Span], ranges: &[Range<usize>]) -> Vec<Vec<usize>> {
    let mut kids = vec![Vec::new(); spans.len()];
    let mut stack: Vec<usize> = Vec::new();
    for s in 0..spans.len() {
        while let Some(&p) = stack.last() {
            let (pr, sr) = (&spans[p].text, &spans[s].text);
            let inside_source = sr.start >= pr.start
                && sr.end <= pr.end
                && !(sr.is_empty() && sr.start == pr.end && !pr.is_empty());
            let inside_target =
                ranges[s].start >= ranges[p].start && ranges[s].end <= ranges[p].end;
            if inside_source && inside_target && !spans[p].opaque {
                break;
            }
            stack.pop();
        }
        if let Some(&p) = stack.last() {
            kids[p].push(s);
        }
        stack.push(s);
    }
    for k in &mut kids {
        k.sort_by_key(|&c| (ranges[c].start, !ranges[c].is_empty(), c));
    }
    kids
}

/// Writes a unit's translation: words and markup.
struct Writer<'m> {
    out: String,
    /// A word was written last: the next word (or element around one) needs a space first.
    sep: bool,
    /// A word whose leading punctuation was written before an element's start: (word, bytes).
    skip_lead: Option<(usize, usize)>,
    markup: &'m mut dyn FnMut(Range<usize>, &mut String),
}

impl Writer<'_> {
    fn space(&mut self) {
        if self.sep {
            self.out.push(' ');
            self.sep = false;
        }
    }

    fn markup(&mut self, range: Range<usize>) {
        if !range.is_empty() {
            (self.markup)(range, &mut self.out);
        }
    }

    fn text(&mut self, text: &str, escape: Escape) {
        if !text.is_empty() {
            let first = self.out.is_empty();
            escape_into(text, escape, first, &mut self.out);
        }
    }
}

struct Tree<'a> {
    unit: &'a Unit,
    target: &'a [&'a str],
    ranges: &'a [Range<usize>],
    kids: Vec<Vec<usize>>,
}

impl Tree<'_> {
    /// Writes target words `lo..hi` with the spans `kids` (in order) around theirs. With
    /// `withhold`, the trailing punctuation of the last word is returned instead of written (the
    /// element being written closes before it).
    fn write(
        &self,
        lo: usize,
        hi: usize,
        kids: &[usize],
        withhold: bool,
        w: &mut Writer<'_>,
    ) -> String {
        let mut pos = lo;
        let mut tail = String::new();
        for &c in kids {
            let r = self.ranges[c].clone();
            for t in pos..r.start.max(pos) {
                self.word(t, false, w);
            }
            pos = pos.max(r.end);
            let span = &self.unit.spans[c];
            // Punctuation next to the element in the source (`"<b>word</b>",`) stays outside it.
            let before = &self.unit.text[..span.text.start];
            let after = &self.unit.text[span.text.end..];
            let lead_out = before.ends_with(is_opening_punct);
            let keep_out = after.starts_with(is_closing_punct);
            if span.opaque {
                if r.is_empty() {
                    w.markup(span.open.clone());
                    continue;
                }
                w.space();
                let lead = leading_punct(self.target[r.start]);
                if lead_out {
                    w.text(lead, self.unit.escape);
                }
                w.markup(span.open.clone());
                if keep_out {
                    // The punctuation of the words it replaces, once (words may have moved).
                    let punct = self.target[r.clone()].iter().find_map(|word| {
                        let core = word.trim_end_matches(is_closing_punct);
                        (core.len() < word.len()).then(|| &word[core.len()..])
                    });
                    w.text(punct.unwrap_or(""), self.unit.escape);
                }
                w.sep = true;
                continue;
            }
            if !r.is_empty() {
                w.space();
                let lead = leading_punct(self.target[r.start]);
                if !lead.is_empty() && lead_out {
                    w.text(lead, self.unit.escape);
                    w.skip_lead = Some((r.start, lead.len()));
                }
            }
            w.markup(span.open.clone());
            let inner = self.write(r.start, r.end, &self.kids[c], keep_out, w);
            w.markup(span.close.clone());
            if withhold && r.end == hi && !r.is_empty() {
                // The punctuation after this child also stays outside the element around it.
                tail = inner;
            } else {
                w.text(&inner, self.unit.escape);
                tail.clear();
            }
        }
        for t in pos..hi {
            let last = withhold && t + 1 == hi;
            tail = self.word(t, last, w).unwrap_or_default();
        }
        tail
    }

    /// Writes target word `t`; with `withhold`, returns its trailing punctuation unwritten.
    fn word(&self, t: usize, withhold: bool, w: &mut Writer<'_>) -> Option<String> {
        let mut word = self.target[t];
        if let Some((at, n)) = w.skip_lead {
            if at == t {
                word = &word[n..];
                w.skip_lead = None;
            }
        }
        w.space();
        let core = word.trim_end_matches(is_closing_punct);
        let (body, tail) = if withhold && !core.is_empty() {
            (core, Some(word[core.len()..].to_string()))
        } else {
            (word, None)
        };
        w.text(body, self.unit.escape);
        w.sep = true;
        tail
    }
}

fn is_opening_punct(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '(' | '[' | '«' | '„' | '“' | '‘' | '¿' | '¡'
    )
}

fn is_closing_punct(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']' | '"' | '\'' | '»' | '”' | '’' | '…'
    )
}

/// The opening punctuation at the start of a word (`"`, `(`, `„`).
fn leading_punct(word: &str) -> &str {
    let n = word
        .char_indices()
        .find(|(_, c)| {
            !matches!(
                c,
                '"' | '\'' | '(' | '[' | '«' | '„' | '“' | '‘' | '¿' | '¡'
            )
        })
        .map_or(word.len(), |(i, _)| i);
    if n == word.len() {
        ""
    } else {
        &word[..n]
    }
}

/// Writes `text` escaped for `escape`; `first` says it starts the unit (Markdown block markup).
pub(crate) fn escape_into(text: &str, escape: Escape, first: bool, out: &mut String) {
    match escape {
        Escape::HtmlText | Escape::HtmlAttribute => {
            for c in text.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' if escape == Escape::HtmlAttribute => out.push_str("&quot;"),
                    '\'' if escape == Escape::HtmlAttribute => out.push_str("&#39;"),
                    '\u{a0}' => out.push_str("&nbsp;"),
                    c => out.push(c),
                }
            }
        }
        Escape::Markdown => {
            let start = out.len();
            for (i, c) in text.chars().enumerate() {
                let leading = first && i == 0 && matches!(c, '#' | '+' | '-' | '=' | '>');
                if leading || matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '|' | '~') {
                    out.push('\\');
                }
                out.push(c);
            }
            // "1999. Text" at the start of a block would become an ordered list.
            if first {
                let written = &out[start..];
                if let Some(dot) = written.find(['.', ')']) {
                    if dot > 0
                        && written[..dot].chars().all(|c| c.is_ascii_digit())
                        && dot + 1 == written.len()
                    {
                        out.insert(start + dot, '\\');
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit over `text` with spans given as (text range, open, close) strings; the source is
    /// the spans' markup laid end to end.
    fn unit(text: &str, spans: &[(Range<usize>, &str, &str, bool)]) -> (Unit, String) {
        let mut source = String::new();
        let mut out = Vec::new();
        for (r, open, close, opaque) in spans {
            let o = source.len()..source.len() + open.len();
            source.push_str(open);
            let c = source.len()..source.len() + close.len();
            source.push_str(close);
            out.push(Span {
                text: r.clone(),
                open: o,
                close: c,
                opaque: *opaque,
            });
        }
        (
            Unit {
                range: 0..0,
                role: Role::Block,
                text: text.to_string(),
                spans: out,
                escape: Escape::HtmlText,
            },
            source,
        )
    }

    fn render(u: &Unit, source: &str, sentences: &[UnitSentence]) -> String {
        render_unit(u, sentences, &mut |r, out| out.push_str(&source[r]))
    }

    fn sentence(
        start: usize,
        source: &str,
        translation: &str,
        alignment: Option<Vec<Option<usize>>>,
    ) -> UnitSentence {
        UnitSentence {
            start,
            source: source.into(),
            translation: translation.into(),
            alignment,
        }
    }

    #[test]
    fn a_span_lands_on_its_aligned_words_and_leaves_punctuation_out() {
        // "Het kabinet is <b>gevallen</b>." -> "The cabinet has <b>fallen</b>."
        let text = "Het kabinet is gevallen.";
        let (u, src) = unit(text, &[(15..23, "<b>", "</b>", false)]);
        let s = sentence(
            0,
            text,
            "The cabinet has fallen.",
            Some(vec![Some(0), Some(1), Some(2), Some(3)]),
        );
        assert_eq!(render(&u, &src, &[s]), "The cabinet has <b>fallen</b>.");
    }

    #[test]
    fn reordered_words_move_the_markup_with_them() {
        // "Gisteren <a>heeft de minister</a> gesproken." -> "Yesterday the minister spoke."
        let text = "Gisteren heeft de minister gesproken.";
        let (u, src) = unit(text, &[(9..26, "<a href=\"x\">", "</a>", false)]);
        let s = sentence(
            0,
            text,
            "Yesterday the minister spoke.",
            Some(vec![Some(0), Some(2), Some(3), Some(4)]),
        );
        assert_eq!(
            render(&u, &src, &[s]),
            "Yesterday <a href=\"x\">the minister</a> spoke."
        );
    }

    #[test]
    fn a_span_over_whole_sentences_wraps_their_whole_translation() {
        let text = "Een. Twee drie.";
        let (u, src) = unit(text, &[(0..15, "<i>", "</i>", false)]);
        let s1 = sentence(0, "Een.", "One.", Some(vec![None]));
        let s2 = sentence(5, "Twee drie.", "Two three.", Some(vec![Some(1), None]));
        assert_eq!(render(&u, &src, &[s1, s2]), "<i>One. Two three.</i>");
    }

    #[test]
    fn nested_spans_stay_nested_and_siblings_move_with_their_words() {
        // "<b>a <i>b</i></b> <u>c</u>", translated in reverse order.
        let text = "a b c";
        let (u, src) = unit(
            text,
            &[
                (0..3, "<b>", "</b>", false),
                (2..3, "<i>", "</i>", false),
                (4..5, "<u>", "</u>", false),
            ],
        );
        let s = sentence(0, text, "x y z", Some(vec![Some(2), Some(1), Some(0)]));
        let out = render(&u, &src, &[s]);
        // Well-nested whatever the alignment says; every tag once.
        for tag in ["<b>", "</b>", "<i>", "</i>", "<u>", "</u>"] {
            assert_eq!(out.matches(tag).count(), 1, "{out}");
        }
        let pos = |t: &str| out.find(t).unwrap();
        assert!(pos("<b>") < pos("<i>") && pos("<i>") < pos("</i>") && pos("</i>") < pos("</b>"));
        // Two siblings aligned to the same words do not overlap: the second gets what is left.
        let (u, src) = unit(
            "a b",
            &[(0..1, "<b>", "</b>", false), (2..3, "<i>", "</i>", false)],
        );
        let s = sentence(0, "a b", "x y", Some(vec![Some(0), Some(0)]));
        assert_eq!(render(&u, &src, &[s]), "<b>x y</b><i></i>");
        // Siblings follow their words: <u> moved to the front with "x".
        assert_eq!(out, "<u>x</u> <b><i>y</i> z</b>");
    }

    #[test]
    fn without_an_alignment_spans_keep_their_relative_place() {
        let text = "een twee drie vier";
        let (u, src) = unit(text, &[(14..18, "<b>", "</b>", false)]);
        let s = sentence(0, text, "one two three four", None);
        assert_eq!(render(&u, &src, &[s]), "one two three <b>four</b>");
    }

    #[test]
    fn opaque_spans_replace_their_words_and_marks_sit_between_words() {
        // "Draai <code>tolk</code> nu <img>."
        let text = "Draai tolk nu.";
        let (u, src) = unit(
            text,
            &[
                (6..10, "<code>tolk</code>", "", true),
                (14..14, "<img src=\"a.png\">", "", false),
            ],
        );
        let s = sentence(
            0,
            text,
            "Run tolk now.",
            Some(vec![Some(0), Some(1), Some(2)]),
        );
        assert_eq!(
            render(&u, &src, &[s]),
            "Run <code>tolk</code> now.<img src=\"a.png\">"
        );
    }

    #[test]
    fn text_is_escaped_for_its_syntax() {
        let mut out = String::new();
        escape_into("a<b & \"c\"", Escape::HtmlAttribute, true, &mut out);
        assert_eq!(out, "a&lt;b &amp; &quot;c&quot;");
        let mut out = String::new();
        escape_into("# *x*_y", Escape::Markdown, true, &mut out);
        assert_eq!(out, "\\# \\*x\\*\\_y");
        let mut out = String::new();
        escape_into("1999.", Escape::Markdown, true, &mut out);
        assert_eq!(out, "1999\\.");
    }

    #[test]
    fn the_builder_collapses_white_space_and_trims_the_unit() {
        // "<p>\n  Het <b>kabinet</b>\n</p>"
        let src = "<p>\n  Het <b>kabinet</b>\n</p>";
        let mut b = UnitBuilder::default();
        b.text("\n  Het ", 3..10, "\n  Het ");
        b.open(10..13);
        b.text("kabinet", 13..20, "kabinet");
        assert!(b.close(20..24));
        b.text("\n", 24..25, "\n");
        let u = b.finish(Role::Block, Escape::HtmlText).unwrap();
        assert_eq!(u.text, "Het kabinet");
        assert_eq!(&src[u.range.clone()], "Het <b>kabinet</b>");
        assert_eq!(u.spans[0].text, 4..11);
    }
}
