//! The document layer: lines, paragraphs, list items, headlines and the runs of running text
//! that the sentence splitter works on.
//!
//! Paragraphs are blocks of non-blank lines separated by blank lines. Inside a block, a line break
//! is *hard* (always a segment boundary) before a list item, after a line without final
//! punctuation (a headline) and in lines mode; otherwise it is *soft*: the lines are joined into
//! one run of text (hard-wrapped text, `…,` at a line end) and the sentence splitter decides.

use std::ops::Range;

use super::chars::{
    after_line_break, char_at, has_line_break, is_blank, is_closer, is_line_break,
    is_lowercase_sentence_start, is_space, is_terminal, skip_while, trim,
};
use super::language::Rules;
use super::long::split_long;
use super::metadata;
use super::sentence::split_sentences;
use super::{Segment, SegmentKind, SegmentMode, Segmenter};

/// Bullet characters that open a list item when followed by white space.
const BULLETS: &[char] = &[
    '-', '*', '+', '•', '·', '–', '—', '▪', '▫', '◦', '‣', '►', '▶', '➢', '→', '✓', '✔', '■', '□',
    '○', '●',
];

/// One non-blank line of a block.
struct Line {
    /// The text after the list marker (if any), trimmed.
    content: Range<usize>,
    /// The list marker, if the line is a list item.
    marker: Option<String>,
}

/// Consecutive lines that are segmented as one stretch of text.
struct Run {
    range: Range<usize>,
    marker: Option<String>,
}

/// Segments `text` according to `options`.
pub(crate) fn segment(text: &str, options: &Segmenter) -> Vec<Segment> {
    let mut out = Vec::new();
    let start = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    let mut pos = start;
    if options.metadata {
        let (fields, rest) = metadata::leading_fields(text, start);
        for field in fields {
            out.push(Segment {
                text: text[field.span.clone()].to_string(),
                span: field.span,
                paragraph: 0,
                kind: SegmentKind::Metadata {
                    key: field.key,
                    value: field.value,
                },
                continues: false,
                starts_line: false,
            });
        }
        pos = rest;
    }

    let mut paragraph = 0;
    // Whether the current paragraph has segments, so that the next blank line ends it.
    let mut paragraph_used = !out.is_empty();
    let mut block: Vec<Range<usize>> = Vec::new();
    while pos < text.len() {
        let line_end = skip_while(text, pos, text.len(), |c| !is_line_break(c));
        let line = pos..line_end;
        pos = after_line_break(text, line_end);
        if text[line.clone()].chars().all(is_space) {
            if !block.is_empty() {
                segment_block(text, &block, paragraph, options, &mut out);
                block.clear();
                paragraph_used = true;
            }
            if paragraph_used {
                paragraph += 1;
                paragraph_used = false;
            }
        } else {
            block.push(line);
        }
    }
    if !block.is_empty() {
        segment_block(text, &block, paragraph, options, &mut out);
    }

    let mut prev_end = None;
    for segment in &mut out {
        segment.starts_line =
            prev_end.is_none_or(|end| has_line_break(text, end..segment.span.start));
        prev_end = Some(segment.span.end);
    }
    out
}

/// Segments one block (paragraph) of non-blank lines.
fn segment_block(
    text: &str,
    block: &[Range<usize>],
    paragraph: usize,
    options: &Segmenter,
    out: &mut Vec<Segment>,
) {
    let rules = options.rules();
    let lines: Vec<Line> = block.iter().map(|r| read_line(text, r.clone())).collect();
    let full_width = wrap_width(text, &lines, options.mode, rules);
    let mut runs: Vec<Run> = Vec::new();
    let mut prev: Option<&Line> = None;
    for line in &lines {
        let joins = prev.is_some_and(|p| {
            options.mode != SegmentMode::Lines
                && line.marker.is_none()
                && (continues_on(text, p, line, rules)
                    || full_width.is_some_and(|w| char_len(text, &p.content) >= w))
        });
        match runs.last_mut() {
            Some(run) if joins => run.range.end = line.content.end,
            _ => runs.push(Run {
                range: line.content.clone(),
                marker: line.marker.clone(),
            }),
        }
        prev = Some(line);
    }

    let mut sentences = Vec::new();
    for run in runs {
        sentences.clear();
        if options.mode == SegmentMode::Sentences {
            split_sentences(text, run.range.clone(), rules, &mut sentences);
        } else {
            sentences.push(run.range.clone());
        }
        let last = sentences.len().saturating_sub(1);
        for (n, sentence) in sentences.iter().enumerate() {
            // A headline is a whole line without final punctuation that ends its run: the first
            // sentence of the run or one that starts after a line break.
            let starts_line = n == 0
                || sentences
                    .get(n - 1)
                    .is_some_and(|p| has_line_break(text, p.end..sentence.start));
            let kind = match &run.marker {
                Some(marker) if n == 0 => SegmentKind::ListItem {
                    marker: marker.clone(),
                },
                _ if n == last
                    && starts_line
                    && !ends_with_punctuation(&text[sentence.clone()]) =>
                {
                    SegmentKind::Headline
                }
                _ => SegmentKind::Sentence,
            };
            let whole_units = options.mode != SegmentMode::Sentences;
            let limit = if options.max_chars == 0 {
                usize::MAX
            } else {
                options.max_chars
            };
            push_split(
                text,
                sentence.clone(),
                kind,
                paragraph,
                (limit, whole_units),
                rules,
                out,
            );
        }
    }
}

/// Pushes the segment at `range`, cut into pieces of at most `limit` characters. A line or
/// paragraph (`whole_units`) that is too long is first cut between its sentences, packing as many
/// whole sentences into each piece as fit; any piece still too long, and any too long sentence, is
/// cut at clause boundaries by [`split_long`].
fn push_split(
    text: &str,
    range: Range<usize>,
    kind: SegmentKind,
    paragraph: usize,
    (limit, whole_units): (usize, bool),
    rules: Rules,
    out: &mut Vec<Segment>,
) {
    let chars = |r: &Range<usize>| text[r.clone()].chars().count();
    let mut groups = Vec::new();
    if whole_units && chars(&range) > limit {
        let mut sentences = Vec::new();
        split_sentences(text, range.clone(), rules, &mut sentences);
        let mut group: Option<Range<usize>> = None;
        for sentence in sentences {
            group = match group {
                Some(g) if chars(&(g.start..sentence.end)) <= limit => Some(g.start..sentence.end),
                Some(g) => {
                    groups.push(g);
                    Some(sentence)
                }
                None => Some(sentence),
            };
        }
        groups.extend(group);
    } else {
        groups.push(range);
    }
    let mut first = true;
    for group in groups {
        for piece in split_long(&text[group.clone()], limit, |s| s.chars().count()) {
            let span = group.start + piece.start..group.start + piece.end;
            out.push(Segment {
                text: text[span.clone()].to_string(),
                span,
                paragraph,
                kind: kind.clone(),
                continues: !first,
                starts_line: false,
            });
            first = false;
        }
    }
}

/// Reads a line's list marker and trimmed content.
fn read_line(text: &str, line: Range<usize>) -> Line {
    let trimmed = trim(text, line);
    let s = &text[trimmed.clone()];
    match list_marker(s) {
        Some((marker_len, content_start)) => Line {
            content: trim(text, trimmed.start + content_start..trimmed.end),
            marker: Some(s[..marker_len].to_string()),
        },
        None => Line {
            content: trimmed,
            marker: None,
        },
    }
}

/// If `line` (trimmed) opens with a list marker followed by white space and text, the marker's
/// length and where the text starts.
///
/// Markers: a bullet character, `1.` `12)` `(3)` (at most three digits, so that a year such as
/// `2020.` is no marker), and `a)` `(b)`. A letter with a full stop is not a marker: `A. Jansen`.
fn list_marker(line: &str) -> Option<(usize, usize)> {
    let mut chars = line.char_indices();
    let (_, first) = chars.next()?;
    let marker_len = if BULLETS.contains(&first) {
        first.len_utf8()
    } else {
        let open = usize::from(first == '(');
        let body = &line[open..];
        let digits = body.chars().take_while(char::is_ascii_digit).count();
        let letter = digits == 0 && body.starts_with(|c: char| c.is_ascii_alphabetic());
        let label = if letter { 1 } else { digits };
        if !(1..=3).contains(&label) {
            return None;
        }
        let close = char_at(body, label)?;
        let closes = if open == 1 {
            close == ')'
        } else {
            close == ')' || (close == '.' && !letter)
        };
        if !closes {
            return None;
        }
        open + label + 1
    };
    let rest = &line[marker_len..];
    let gap = rest.len() - rest.trim_start_matches(is_blank).len();
    (gap > 0 && gap < rest.len()).then_some((marker_len, marker_len + gap))
}

/// Words that cannot end a Dutch clause (articles, `van`, `met`, conjunctions): a line that ends
/// with one is wrapped, not a headline.
const OPEN_ENDINGS: &[&str] = &[
    "de", "een", "van", "met", "en", "of", "maar", "want", "omdat", "te", "ten", "ter", "der",
    "den", "zoals", "waardoor", "terwijl", "doordat", "nadat", "zodat", "hoewel", "volgens",
];

/// The same for English.
const OPEN_ENDINGS_EN: &[&str] = &[
    "the", "a", "an", "of", "and", "or", "but", "to", "in", "on", "at", "by", "for", "with",
    "from", "as", "that", "than", "because", "while", "which", "whose", "its", "their", "his",
    "her",
];

/// The words that cannot end a clause in the language of `rules` (none are known for the
/// language-independent rules).
fn open_endings(rules: Rules) -> &'static [&'static str] {
    match rules {
        Rules::Dutch => OPEN_ENDINGS,
        Rules::English => OPEN_ENDINGS_EN,
        Rules::Generic => &[],
    }
}

/// Clause punctuation that continues a sentence on the next line: Latin and full-width
/// (Chinese and Japanese) commas and semicolons, and the ideographic comma.
fn is_clause_mark(c: char) -> bool {
    matches!(c, ',' | ';' | '，' | '；' | '、')
}

/// Whether the text of `prev` plainly continues on the next line: it ends with sentence
/// punctuation (the sentence splitter then decides), a comma or semicolon, a word broken at a
/// hyphen or a word that cannot end a clause, or the next line starts with a lowercase word.
fn continues_on(text: &str, prev: &Line, next: &Line, rules: Rules) -> bool {
    let prev_text = &text[prev.content.clone()];
    let unclosed = prev_text.trim_end_matches(is_closer);
    let Some(last) = unclosed.chars().next_back() else {
        return false;
    };
    if is_terminal(last) || is_clause_mark(last) {
        return true;
    }
    // A word broken at a hyphen: "verkiezings-\nuitslag".
    if last == '-'
        && unclosed
            .chars()
            .rev()
            .nth(1)
            .is_some_and(char::is_alphabetic)
    {
        return true;
    }
    let last_word = unclosed.rsplit(is_space).next().unwrap_or_default();
    if open_endings(rules).contains(&last_word) {
        return true;
    }
    let next_text = &text[next.content.clone()];
    let first_word = next_text.split(is_space).next().unwrap_or_default();
    next_text.starts_with(char::is_lowercase) && !is_lowercase_sentence_start(first_word)
}

/// For a hard-wrapped block (one where some line plainly continues on the next, see
/// [`continues_on`], and lines are at least 40 characters wide), the width from which a line
/// counts as full: a full line without final punctuation is wrapped too, even before a capital
/// ("... gesprek met\nViktor Babariko ..."). `None` for other blocks, whose unpunctuated lines
/// are headlines.
fn wrap_width(text: &str, lines: &[Line], mode: SegmentMode, rules: Rules) -> Option<usize> {
    if mode == SegmentMode::Lines || lines.len() < 2 {
        return None;
    }
    let plainly_wrapped = lines.windows(2).any(|pair| {
        pair[1].marker.is_none() && {
            let prev = &text[pair[0].content.clone()];
            let last = prev.trim_end_matches(is_closer).chars().next_back();
            !last.is_some_and(is_terminal) && continues_on(text, &pair[0], &pair[1], rules)
        }
    });
    let widest = lines.iter().map(|l| char_len(text, &l.content)).max()?;
    (plainly_wrapped && widest >= 40).then_some(widest * 7 / 10)
}

fn char_len(text: &str, range: &Range<usize>) -> usize {
    text[range.clone()].chars().count()
}

/// Whether a segment ends with punctuation (a sentence mark, a colon, a comma or a semicolon,
/// Latin or full-width), ignoring closing quotes and brackets; a line without it is a headline.
fn ends_with_punctuation(s: &str) -> bool {
    s.trim_end_matches(is_closer)
        .chars()
        .next_back()
        .is_some_and(|c| is_terminal(c) || is_clause_mark(c) || matches!(c, ':' | '：'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(list_marker("- a"), Some((1, 2)));
        assert_eq!(list_marker("•\tpunt"), Some((3, 4)));
        assert_eq!(list_marker("12. punt"), Some((3, 4)));
        assert_eq!(list_marker("(3) punt"), Some((3, 4)));
        assert_eq!(list_marker("b) punt"), Some((2, 3)));
        assert_eq!(list_marker("2020. Dat jaar"), None);
        assert_eq!(list_marker("A. Jansen"), None);
        assert_eq!(list_marker("-"), None);
        assert_eq!(list_marker("- "), None);
        assert_eq!(list_marker("-5 graden"), None);
        assert_eq!(list_marker("(a punt"), None);
    }
}
