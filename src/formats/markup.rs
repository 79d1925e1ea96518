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

use crate::align::Alignment;

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
    /// XML character data (office parts): `&`, `<` and `>` as references.
    Xml,
    /// Subtitle text as written (SubRip): nothing escaped.
    Plain,
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

/// Whether `text` reads as a note marker or an index (`1`, `*`, `²`, `†`): a few characters,
/// none a letter, at least one a digit or a note sign, not after a space.
pub(crate) fn is_marker(text: &str) -> bool {
    let t = text.trim_end();
    !t.is_empty()
        && t.chars().count() <= 4
        && !t.chars().any(char::is_alphabetic)
        && t.chars()
            .any(|c| c.is_numeric() || matches!(c, '*' | '†' | '‡' | '§' | '¶' | '#'))
        && !text.starts_with(char::is_whitespace)
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

    /// Whether the unit's text so far ends with a word (no space after it).
    pub fn ends_with_word(&self) -> bool {
        self.text.ends_with(|c: char| !c.is_whitespace())
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
    /// How the translation lines up with `source` (none: units at the same relative place).
    pub alignment: Option<Alignment>,
}

/// A unit's translation cut into target units, with what they are aligned with, unit-wide.
struct Layout<'a> {
    /// The source units: byte ranges of the unit's text.
    source: Vec<Range<usize>>,
    /// The target units' text.
    target: Vec<&'a str>,
    /// What is written before each target unit when something was written before it (a space,
    /// or nothing in a script without spaces).
    gaps: Vec<String>,
    /// Text after the last target unit that no unit holds.
    tail: String,
    /// For each target unit, its source unit.
    links: Vec<Option<usize>>,
    /// For each source unit, the target unit that attended to it most, where known.
    anchors: Vec<Option<usize>>,
    /// Per sentence: its source units and its target units (index ranges).
    parts: Vec<(Range<usize>, Range<usize>)>,
}

impl<'a> Layout<'a> {
    fn new(unit: &Unit, sentences: &'a [UnitSentence]) -> Self {
        let mut l = Layout {
            source: Vec::new(),
            target: Vec::new(),
            gaps: Vec::new(),
            tail: String::new(),
            links: Vec::new(),
            anchors: Vec::new(),
            parts: Vec::new(),
        };
        let mut pending = String::new();
        for s in sentences {
            let fallback;
            let a = match &s.alignment {
                Some(a) if a.fits(&s.source, &s.translation) => a,
                _ => {
                    fallback = Alignment::proportional(&s.source, &s.translation);
                    &fallback
                }
            };
            // The sentence's source units in the unit's text: at its offset when the text
            // there is the sentence, else found again.
            let start = s.start.min(unit.text.len());
            let rest = unit.text.get(start..).unwrap_or("");
            let here: Vec<Range<usize>> = if rest.starts_with(s.source.as_str()) {
                a.source.clone()
            } else {
                crate::align::locate(rest, a.source.iter().map(|r| &s.source[r.clone()]))
            };
            let s_first = l.source.len();
            let t_first = l.target.len();
            let mut index = Vec::with_capacity(here.len());
            for (k, r) in here.into_iter().enumerate() {
                if r.is_empty() {
                    index.push(None);
                } else {
                    index.push(Some(l.source.len()));
                    l.source.push(start + r.start..start + r.end);
                    l.anchors
                        .push(a.anchors.get(k).copied().flatten().map(|t| t_first + t));
                }
            }
            if !l.target.is_empty() && !s.translation.trim().is_empty() {
                pending.push(' ');
            }
            let mut end = 0;
            for (r, link) in a.target.iter().zip(&a.links) {
                pending.push_str(&s.translation[end..r.start]);
                l.gaps
                    .push(collapse(&std::mem::take(&mut pending), l.target.is_empty()));
                l.target.push(&s.translation[r.clone()]);
                l.links
                    .push(link.and_then(|k| index.get(k).copied().flatten()));
                end = r.end;
            }
            pending.push_str(&s.translation[end..]);
            l.parts
                .push((s_first..l.source.len(), t_first..l.target.len()));
        }
        l.tail = collapse(pending.trim_end(), false);
        l
    }

    /// The sentence holding source byte `at` (the last one starting at or before it).
    fn sentence_at(&self, at: usize) -> usize {
        let k = self
            .parts
            .iter()
            .rposition(|(src, _)| self.source.get(src.start).is_some_and(|r| r.start <= at));
        k.unwrap_or(0)
    }

    /// The sentence of source unit `u`.
    fn sentence_of(&self, u: usize) -> usize {
        self.parts
            .iter()
            .position(|(src, _)| src.contains(&u))
            .unwrap_or(0)
    }
}

/// White space collapsed to single spaces (dropped at the start of the unit).
fn collapse(text: &str, first: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            let leading = first && out.is_empty();
            if !out.ends_with(' ') && !leading {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Target units that a span over source units `lo..=hi` lands on within sentence `k`: the
/// densest run of units aligned with them (a run is broken by two units aligned elsewhere), or,
/// where none is, the same relative place. A span over part of the sentence never gets all of
/// a translation of two units or more unless every aligned unit of it is aligned with the span.
fn land(l: &Layout<'_>, k: usize, lo: usize, hi: usize) -> Range<usize> {
    let (src, tgt) = l.parts[k].clone();
    if tgt.is_empty() {
        return tgt.start..tgt.start;
    }
    let inside = |t: usize| l.links[t].is_some_and(|a| a >= lo && a <= hi);
    let foreign = |t: usize| l.links[t].is_some() && !inside(t);
    let mut hits: Vec<usize> = tgt.clone().filter(|&t| inside(t)).collect();
    // Where both directions of the attention agree (a unit aligned with the span that is also
    // the unit that attended most to one of the span's source units), the span starts there
    // and grows over its other aligned units in reading order: a preposition before the words
    // is left out (`in <b>Beijing</b>`), the noun after its modifier kept (`<b>ten minutes</b>`).
    let anchored: Vec<usize> = (lo..=hi)
        .filter_map(|u| l.anchors.get(u).copied().flatten())
        .collect();
    let mut both: Vec<usize> = hits
        .iter()
        .copied()
        .filter(|t| anchored.contains(t))
        .collect();
    if !both.is_empty() {
        for &h in &hits {
            if h > 0 && both.contains(&(h - 1)) && !both.contains(&h) {
                both.push(h);
            }
        }
        both.sort_unstable();
        hits = both;
    }
    let part = lo > src.start || hi + 1 < src.end;
    let mut range = if hits.is_empty() {
        let (a, n, m) = (src.start, src.len().max(1), tgt.len());
        let last = src.end.max(src.start + 1) - 1;
        let (lo, hi) = (lo.clamp(src.start, last) - a, hi.clamp(src.start, last) - a);
        let from = (tgt.start + lo * m / n).min(tgt.end - 1);
        let to = (tgt.start + ((hi + 1) * m).div_ceil(n)).clamp(from + 1, tgt.end);
        let mut r = from..to;
        if part && r == tgt && r.len() >= 2 {
            // Leave out the end that the span does not reach.
            if hi + 1 < n {
                r.end -= 1;
            } else {
                r.start += 1;
            }
        }
        r
    } else {
        let run = |gap: usize| {
            let mut best = hits[0]..hits[0] + 1;
            let mut best_count = 1;
            let mut run = best.clone();
            let mut count = 1;
            for w in hits.windows(2) {
                if (w[0] + 1..w[1]).filter(|&t| foreign(t)).count() >= gap {
                    run = w[1]..w[1] + 1;
                    count = 1;
                } else {
                    run.end = w[1] + 1;
                    count += 1;
                }
                if count > best_count {
                    best = run.clone();
                    best_count = count;
                }
            }
            best
        };
        let r = run(2);
        if part && r == tgt && r.clone().any(foreign) {
            run(1)
        } else {
            r
        }
    };
    range.start = range.start.max(tgt.start);
    range.end = range.end.clamp(range.start, tgt.end);
    range
}

/// A unit's translation with its markup put back, as text in the unit's syntax (escaped).
/// `source` is the whole document (the spans' markup is copied from it through `markup`, which
/// writes a source range, translating what it holds: an attribute inside a link's start tag).
///
/// Where each span goes, by its source text:
/// - over text: on the target units aligned with its source units ([`land`]), all of the
///   translation of every sentence it covers whole;
/// - never outside the translation of the sentences it touches, never outside its parent;
/// - siblings never overlap (they may change order, as words do): each is placed, smallest
///   first, on what its siblings left, and one over text gets at least one target unit (taken
///   from a sibling's end if need be) as long as the sentence has as many target units as
///   such siblings;
/// - a span over no text (an image) sits after the target unit aligned with the source
///   before it.
pub(crate) fn render_unit(
    unit: &Unit,
    sentences: &[UnitSentence],
    markup: &mut dyn FnMut(Range<usize>, &mut String),
) -> String {
    let l = Layout::new(unit, sentences);
    let n_target = l.target.len();
    let spans = &unit.spans;

    // The source tree: each span's parent.
    let mut parent: Vec<Option<usize>> = vec![None; spans.len()];
    let mut stack: Vec<usize> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        while let Some(&p) = stack.last() {
            let t = &spans[p].text;
            if span.text.start >= t.start
                && span.text.end <= t.end
                && !(span.text.is_empty() && span.text.start == t.end && !t.is_empty())
            {
                break;
            }
            stack.pop();
        }
        parent[i] = stack.last().copied();
        // An opaque span is written whole: nothing is inside it (the builders make nothing
        // inside one), and a mark after it at the same place is its sibling.
        if !span.opaque {
            stack.push(i);
        }
    }

    // Where each span would go on its own, and the target units of the sentences it touches.
    let mut wish: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    let mut home: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    let mut over_text: Vec<bool> = Vec::with_capacity(spans.len());
    for span in spans {
        let mut covered: Vec<usize> = (0..l.source.len())
            .filter(|&u| {
                let r = &l.source[u];
                r.start < span.text.end && r.end > span.text.start
            })
            .collect();
        let text = &unit.text[span.text.clone()];
        if covered.is_empty() && !text.trim().is_empty() && !l.source.is_empty() {
            // Text that no unit holds: the unit before it (or the first).
            let before = l.source.iter().rposition(|r| r.start <= span.text.start);
            covered.push(before.unwrap_or(0));
        }
        if covered.is_empty() {
            let k = l.sentence_at(span.text.start);
            let (src, tgt) = l.parts.get(k).cloned().unwrap_or((0..0, 0..0));
            let before = src
                .clone()
                .rev()
                .find(|&u| l.source[u].end <= span.text.start);
            let at = match before {
                Some(b) => tgt
                    .clone()
                    .rev()
                    .find(|&t| l.links[t].is_some_and(|a| a >= src.start && a <= b))
                    .map_or(tgt.start, |t| t + 1),
                None => tgt.start,
            };
            wish.push(at..at);
            home.push(tgt);
            over_text.push(false);
            continue;
        }
        let (lo, hi) = (covered[0], covered[covered.len() - 1]);
        let (k_lo, k_hi) = (l.sentence_of(lo), l.sentence_of(hi));
        let mut range: Option<Range<usize>> = None;
        for k in k_lo..=k_hi {
            let (src, tgt) = l.parts[k].clone();
            let got = if src.start >= lo && src.end <= hi + 1 {
                tgt
            } else {
                land(&l, k, lo, hi)
            };
            if got.is_empty() {
                continue;
            }
            range = Some(match range {
                Some(r) => r.start.min(got.start)..r.end.max(got.end),
                None => got,
            });
        }
        let h = l.parts[k_lo].1.start..l.parts[k_hi].1.end;
        wish.push(range.unwrap_or(h.start..h.start));
        home.push(h);
        over_text.push(true);
    }

    // Place the spans, parents before children, siblings on disjoint target units.
    let mut ranges: Vec<Range<usize>> = vec![0..0; spans.len()];
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut top: Vec<usize> = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => kids[*p].push(i),
            None => top.push(i),
        }
    }
    // How many target units each span needs: one, or one for each span over text inside it.
    let mut need = vec![0usize; spans.len()];
    for i in (0..spans.len()).rev() {
        if over_text[i] {
            let inner: usize = kids[i].iter().map(|&k| need[k]).sum();
            need[i] = inner.max(1);
        }
    }
    let sites = Sites {
        wish: &wish,
        home: &home,
        need: &need,
    };
    let mut queue: Vec<(Range<usize>, Vec<usize>)> = vec![(0..n_target, top.clone())];
    while let Some((bounds, siblings)) = queue.pop() {
        sites.place(&siblings, &bounds, &mut ranges);
        for &c in &siblings {
            if !spans[c].opaque && !kids[c].is_empty() {
                queue.push((ranges[c].clone(), kids[c].clone()));
            }
        }
    }
    let order = |list: &mut Vec<usize>| {
        list.sort_by_key(|&c| (ranges[c].start, !ranges[c].is_empty(), c));
    };
    order(&mut top);
    for k in &mut kids {
        order(k);
    }

    let edges = spans
        .iter()
        .map(|span| {
            let k = l.sentence_at(span.text.start);
            let starts = l.parts.get(k).is_none_or(|(src, _)| {
                l.source
                    .get(src.start)
                    .is_none_or(|r| span.text.start <= r.start)
            });
            let k = l.sentence_at(span.text.end.saturating_sub(1));
            let ends = l.parts.get(k).is_none_or(|(src, _)| {
                src.end == 0
                    || l.source
                        .get(src.end - 1)
                        .is_none_or(|r| span.text.end >= r.end)
            });
            (starts, ends)
        })
        .collect();
    let tree = Tree {
        unit,
        target: &l.target,
        ranges: &ranges,
        kids,
        edges,
    };
    let mut w = Writer {
        out: String::new(),
        sep: false,
        gaps: &l.gaps,
        escape: unit.escape,
        started: false,
        skip_lead: None,
        markup,
    };
    let tail = tree.write(0, n_target, &top, false, &mut w);
    w.text(&tail, unit.escape);
    w.text(&l.tail, unit.escape);
    w.out
}

/// Where spans want to go ([`render_unit`]), by span.
struct Sites<'a> {
    /// The target units a span would land on alone (empty: a span over no text, at that place).
    wish: &'a [Range<usize>],
    /// The target units of the sentences it touches.
    home: &'a [Range<usize>],
    /// How many target units it needs (0: a span over no text).
    need: &'a [usize],
}

impl Sites<'_> {
    /// Places `siblings` inside `bounds`: spans over text first, smallest wish first, each on
    /// the largest part of its wish (within its home) that the others left, else on the free
    /// target unit nearest to it, else on a unit taken from the end of the longest sibling in
    /// reach, then grown over free units to what it needs; then the spans over no text, moved
    /// out of any sibling they would fall inside.
    fn place(&self, siblings: &[usize], bounds: &Range<usize>, ranges: &mut [Range<usize>]) {
        let (wish, home, need) = (self.wish, self.home, self.need);
        let limits = |c: usize| {
            let lo = bounds.start.max(home[c].start).min(bounds.end);
            let hi = bounds.end.min(home[c].end).max(lo);
            (lo, hi)
        };
        let mut texts: Vec<usize> = siblings.iter().copied().filter(|&c| need[c] > 0).collect();
        texts.sort_by_key(|&c| (wish[c].len(), wish[c].start, c));
        let mut placed: Vec<usize> = Vec::new();
        for &c in &texts {
            let (lo, hi) = limits(c);
            let want = wish[c].start.clamp(lo, hi)..wish[c].end.clamp(lo, hi);
            let taken: Vec<Range<usize>> = placed.iter().map(|&p| ranges[p].clone()).collect();
            let free = |t: usize| !taken.iter().any(|r| r.contains(&t));
            let mut range = carve(want.clone(), &taken);
            if range.is_empty() && lo < hi {
                let centre = want.start;
                let nearest = (lo..hi)
                    .filter(|&t| free(t))
                    .min_by_key(|&t| (t.abs_diff(centre), t));
                range = match nearest {
                    Some(t) => t..t + 1,
                    None => {
                        // Take a unit from the end of the longest sibling in reach.
                        let donor = placed
                            .iter()
                            .copied()
                            .filter(|&p| {
                                let r = &ranges[p];
                                r.len() >= 2 && r.start < hi && lo < r.end
                            })
                            .max_by_key(|&p| (ranges[p].len(), std::cmp::Reverse(p)));
                        match donor {
                            Some(p) if ranges[p].end <= hi => {
                                ranges[p].end -= 1;
                                ranges[p].end..ranges[p].end + 1
                            }
                            Some(p) => {
                                ranges[p].start += 1;
                                ranges[p].start - 1..ranges[p].start
                            }
                            None => range,
                        }
                    }
                };
            }
            // Room for the spans inside it: free units next to it, else units from the near
            // end of a neighbouring sibling that has more than it needs.
            while !range.is_empty() && range.len() < need[c] {
                let next = placed
                    .iter()
                    .copied()
                    .find(|&p| ranges[p].start == range.end);
                let prev = placed
                    .iter()
                    .copied()
                    .find(|&p| ranges[p].end == range.start);
                if range.end < hi && free(range.end) {
                    range.end += 1;
                } else if range.start > lo && free(range.start - 1) {
                    range.start -= 1;
                } else if let Some(p) =
                    next.filter(|&p| range.end < hi && ranges[p].len() > need[p])
                {
                    ranges[p].start += 1;
                    range.end += 1;
                } else if let Some(p) =
                    prev.filter(|&p| range.start > lo && ranges[p].len() > need[p])
                {
                    ranges[p].end -= 1;
                    range.start -= 1;
                } else {
                    break;
                }
            }
            ranges[c] = range;
            placed.push(c);
        }
        for &c in siblings.iter().filter(|&&c| need[c] == 0) {
            let (lo, hi) = limits(c);
            let mut at = wish[c].start.clamp(lo, hi);
            if let Some(p) = placed
                .iter()
                .find(|&&p| ranges[p].start < at && at < ranges[p].end)
            {
                at = ranges[*p].end;
            }
            ranges[c] = at..at;
        }
    }
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

/// Writes a unit's translation: words and markup.
struct Writer<'m> {
    out: String,
    /// A target unit was written last: the next one (or an element around one) needs its gap
    /// first.
    sep: bool,
    /// What goes before each target unit after another ([`Layout::gaps`]).
    gaps: &'m [String],
    /// How text is escaped.
    escape: Escape,
    /// A target unit's gap was considered: the unit's text has begun.
    started: bool,
    /// A word whose leading punctuation was written before an element's start: (word, bytes).
    skip_lead: Option<(usize, usize)>,
    markup: &'m mut dyn FnMut(Range<usize>, &mut String),
}

impl Writer<'_> {
    /// The gap before target unit `t`, if something was written before it; before the first,
    /// what its gap holds besides white space (a sentence whose translation has no unit).
    fn space(&mut self, t: usize) {
        let gap = self.gaps.get(t).map_or(" ", String::as_str);
        if self.sep {
            escape_into(gap, self.escape, false, &mut self.out);
            self.sep = false;
        } else if !self.started {
            escape_into(gap.trim(), self.escape, self.out.is_empty(), &mut self.out);
        }
        self.started = true;
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
    /// Per span: whether its source starts its sentence, and whether it ends it.
    edges: Vec<(bool, bool)>,
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
            // Punctuation outside the element in the source stays outside it: written next to it
            // (`"<b>word</b>",`), or left out of an element that does not reach its sentence's
            // start or end (the full stop after `<b>明年</b>开始实施。`).
            let inside = &self.unit.text[span.text.clone()];
            let before = &self.unit.text[..span.text.start];
            let after = &self.unit.text[span.text.end..];
            let (starts, ends) = self.edges[c];
            let lead_out = before.ends_with(is_opening_punct)
                || (!starts && !inside.starts_with(is_opening_punct));
            let keep_out = after.starts_with(is_closing_punct)
                || (!ends && !inside.trim_end().ends_with(is_closing_punct));
            if span.opaque {
                if r.is_empty() {
                    w.markup(span.open.clone());
                    continue;
                }
                w.space(r.start);
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
                w.space(r.start);
                // Not again when the element around it wrote it already.
                let lead = match w.skip_lead {
                    Some((at, _)) if at == r.start => "",
                    _ => leading_punct(self.target[r.start]),
                };
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
            } else if !r.is_empty() {
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
        w.space(t);
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
        '.' | ','
            | ';'
            | ':'
            | '!'
            | '?'
            | ')'
            | ']'
            | '"'
            | '\''
            | '»'
            | '”'
            | '’'
            | '…'
            | '。'
            | '，'
            | '、'
            | '！'
            | '？'
            | '；'
            | '：'
            | '」'
            | '』'
            | '）'
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
                    // As a character reference, which XHTML reads too.
                    '\u{a0}' => out.push_str("&#160;"),
                    c => out.push(c),
                }
            }
        }
        Escape::Xml => crate::formats::xml::escape_text(text, out),
        Escape::Plain => out.push_str(text),
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

    /// A sentence whose translation's words are aligned with its words by `links`.
    fn sentence(
        start: usize,
        source: &str,
        translation: &str,
        links: Option<Vec<Option<usize>>>,
    ) -> UnitSentence {
        UnitSentence {
            start,
            source: source.into(),
            translation: translation.into(),
            alignment: links.map(|links| Alignment {
                anchors: Vec::new(),
                source: crate::align::units(source),
                target: crate::align::units(translation),
                links,
            }),
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
    fn a_span_starts_where_both_directions_of_the_attention_agree() {
        // "我住在<b>北京</b>十分钟。" -> "I live in Beijing ten minutes." (a made-up alignment):
        // "in" and "Beijing" are both linked to 北京, but 北京 attended most to "Beijing".
        let text = "我 住在 北京 十分钟 。";
        let (u, src) = unit(
            text,
            &[
                (11..17, "<b>", "</b>", false),
                (18..27, "<i>", "</i>", false),
            ],
        );
        let translation = "I live in Beijing ten minutes.";
        let s = UnitSentence {
            start: 0,
            source: text.into(),
            translation: translation.into(),
            alignment: Some(Alignment {
                // 我, 住在, 北京, 十分钟, 。 (as a tokenizer's pieces would make them).
                source: vec![0..3, 4..10, 11..17, 18..27, 28..31],
                target: crate::align::units(translation),
                // I live in Beijing ten minutes.
                links: vec![Some(0), Some(1), Some(2), Some(2), Some(3), Some(3)],
                // 我 -> I, 住在 -> live, 北京 -> Beijing, 十分钟 -> ten, 。 -> minutes.
                anchors: vec![Some(0), Some(1), Some(3), Some(4), Some(5)],
            }),
        };
        // The preposition stays out; the noun after "ten" comes in.
        assert_eq!(
            render(&u, &src, &[s]),
            "I live in <b>Beijing</b> <i>ten minutes</i>."
        );
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
        // Two siblings aligned to the same words do not overlap, and neither is left empty:
        // the second takes a word from the end of the first.
        let (u, src) = unit(
            "a b",
            &[(0..1, "<b>", "</b>", false), (2..3, "<i>", "</i>", false)],
        );
        let s = sentence(0, "a b", "x y", Some(vec![Some(0), Some(0)]));
        assert_eq!(render(&u, &src, &[s]), "<b>x</b> <i>y</i>");
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
