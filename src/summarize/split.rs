//! A small rule-based English sentence splitter, so that English text can be summarised without
//! the Dutch segmenter: blank lines separate paragraphs, and a sentence ends at `.`, `?`, `!` or
//! `…` (with any closing quotes or brackets) before whitespace and a word that does not start in
//! lower case, unless the period belongs to an abbreviation.
//!
//! Abbreviations come in two kinds. Titles such as "Mr." or "Dr." never end a sentence.
//! Ambiguous ones ("U.S.", "Inc.", "etc.", "Jan.", initials such as "F.") end one only when the next
//! word is a typical sentence opener ("The", "He", "But", ...): "in the U.S. The" splits, "the
//! U.S. Senate" does not. A sentence that really ends in "U.S." before a name stays joined to the
//! next; that is the price of a rule set this small.

/// One sentence found in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnglishSentence<'a> {
    /// The sentence, without surrounding whitespace; a slice of the input, so a sentence that
    /// wraps over lines keeps its line breaks.
    pub text: &'a str,
    /// Byte offset of the sentence in the input.
    pub start: usize,
    /// Byte offset just past the sentence.
    pub end: usize,
    /// Paragraph number, counting from 0; paragraphs are separated by blank lines.
    pub paragraph: usize,
}

use crate::segment::english::{in_list, AMBIGUOUS, OPENERS, TITLES};

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '?' | '!' | '…')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | '»' | ')' | ']' | '}')
}

fn is_opener(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '“' | '‘' | '«' | '(' | '[' | '{' | '-' | '–' | '—'
    )
}

/// Splits English text into sentences with their byte spans and paragraph numbers. Empty and
/// whitespace-only stretches produce nothing.
pub fn split_english(text: &str) -> Vec<EnglishSentence<'_>> {
    let mut sentences = Vec::new();
    for (paragraph, (start, end)) in paragraphs(text).into_iter().enumerate() {
        let Some(body) = text.get(start..end) else {
            continue;
        };
        for (s, e) in split_paragraph(body) {
            if let Some(sentence) = text.get(start + s..start + e) {
                sentences.push(EnglishSentence {
                    text: sentence,
                    start: start + s,
                    end: start + e,
                    paragraph,
                });
            }
        }
    }
    sentences
}

/// Byte ranges of the paragraphs: runs of lines that are not blank.
fn paragraphs(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        if line.trim().is_empty() {
            if let Some(range) = current.take() {
                ranges.push(range);
            }
        } else {
            let line_end = line_start + line.trim_end().len();
            current = Some(match current {
                Some((s, _)) => (s, line_end),
                None => (
                    line_start + (line.len() - line.trim_start().len()),
                    line_end,
                ),
            });
        }
    }
    ranges.extend(current);
    ranges
}

/// Byte ranges of the sentences of one paragraph (relative to it), trimmed.
fn split_paragraph(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if !is_terminator(c) {
            i += 1;
            continue;
        }
        let first_terminator = i;
        let mut j = i;
        while j < chars.len() && is_terminator(chars[j].1) {
            j += 1;
        }
        let terminators = j - first_terminator;
        let mut closers = 0;
        while j < chars.len() && (is_closer(chars[j].1) || is_terminator(chars[j].1)) {
            j += 1;
            closers += 1;
        }
        // A boundary needs whitespace after it ("3.5", "U.S.A", "example.com" have none).
        let end_byte = chars.get(j).map_or(text.len(), |&(b, _)| b);
        if j < chars.len() && !chars[j].1.is_whitespace() {
            i = j;
            continue;
        }
        let mut k = j;
        while k < chars.len() && chars[k].1.is_whitespace() {
            k += 1;
        }
        if k == chars.len() {
            break;
        }
        let next_word = word_after(&chars, k);
        let single_period = c == '.' && terminators == 1 && closers == 0;
        if ends_sentence(&chars, first_terminator, single_period, &next_word) {
            ranges.push((start, end_byte));
            start = chars[k].0;
        }
        i = k;
    }
    ranges.push((start, text.len()));
    ranges
        .into_iter()
        .filter_map(|(s, e)| trim(text, s, e))
        .collect()
}

/// The word that starts at or after `k`, past any opening quotes or brackets.
fn word_after(chars: &[(usize, char)], k: usize) -> String {
    chars
        .iter()
        .skip(k)
        .skip_while(|(_, c)| is_opener(*c))
        .take_while(|(_, c)| c.is_alphanumeric())
        .map(|&(_, c)| c)
        .collect()
}

/// The word just before position `dot` (letters, digits and inner periods), e.g. `U.S` or `Mr`.
fn word_before(chars: &[(usize, char)], dot: usize) -> String {
    let mut from = dot;
    while from > 0 {
        let c = chars[from - 1].1;
        if c.is_alphanumeric() || c == '.' {
            from -= 1;
        } else {
            break;
        }
    }
    chars[from..dot].iter().map(|&(_, c)| c).collect()
}

fn ends_sentence(
    chars: &[(usize, char)],
    terminator: usize,
    single_period: bool,
    next: &str,
) -> bool {
    let Some(first) = next.chars().next() else {
        // Punctuation, a symbol or a quote with no word: a new sentence if it is not lower case.
        return true;
    };
    if first.is_lowercase() {
        return false;
    }
    if !single_period {
        return true;
    }
    let before = word_before(chars, terminator);
    let lower = before.to_lowercase();
    if in_list(&TITLES, &lower) {
        return false;
    }
    let letters = before.chars().filter(|c| c.is_alphabetic()).count();
    let initialism = before.contains('.') || (letters == 1 && before.chars().count() == 1);
    if initialism || in_list(&AMBIGUOUS, &lower) {
        return in_list(&OPENERS, &next.to_lowercase());
    }
    true
}

fn trim(text: &str, s: usize, e: usize) -> Option<(usize, usize)> {
    let slice = text.get(s..e)?;
    let leading = slice.len() - slice.trim_start().len();
    let trimmed = slice.trim();
    if trimmed.is_empty() {
        None
    } else {
        Some((s + leading, s + leading + trimmed.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<&str> {
        split_english(text).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_on_terminators() {
        assert_eq!(
            texts("It rained. Was it cold? Yes! Very cold… Then it stopped."),
            [
                "It rained.",
                "Was it cold?",
                "Yes!",
                "Very cold…",
                "Then it stopped."
            ]
        );
    }

    #[test]
    fn keeps_titles_initials_and_decimals() {
        assert_eq!(
            texts("Mr. Smith met Dr. Jones at 3.30 p.m. on Monday. Growth was 2.5 percent."),
            [
                "Mr. Smith met Dr. Jones at 3.30 p.m. on Monday.",
                "Growth was 2.5 percent."
            ]
        );
        assert_eq!(
            texts("John F. Kennedy visited the U.S. Senate. It was 1961."),
            ["John F. Kennedy visited the U.S. Senate.", "It was 1961."]
        );
        assert_eq!(
            texts("Prof. Jan de Vries (Univ. of Leiden) spoke."),
            ["Prof. Jan de Vries (Univ. of Leiden) spoke."]
        );
    }

    #[test]
    fn ambiguous_abbreviations_end_a_sentence_before_an_opener() {
        assert_eq!(
            texts(
                "Troops left the U.S. The war was over. He works for Acme Inc. But not for long."
            ),
            [
                "Troops left the U.S.",
                "The war was over.",
                "He works for Acme Inc.",
                "But not for long."
            ]
        );
        assert_eq!(
            texts("Apples, pears etc. were sold. No. 10 Downing St. was quiet."),
            [
                "Apples, pears etc. were sold.",
                "No. 10 Downing St. was quiet."
            ]
        );
    }

    #[test]
    fn handles_quotes_and_brackets() {
        assert_eq!(
            texts("He said: \"We won.\" Then he left. \"Why?\" she asked. (It was late.) \"Fine,\" he said."),
            [
                "He said: \"We won.\"",
                "Then he left.",
                "\"Why?\" she asked.",
                "(It was late.)",
                "\"Fine,\" he said."
            ]
        );
        assert_eq!(
            texts("“It is over.” The minister resigned. ‘No,’ she said."),
            ["“It is over.”", "The minister resigned.", "‘No,’ she said."]
        );
    }

    #[test]
    fn ellipses_and_lower_case_continuations() {
        assert_eq!(
            texts("He paused... then went on. Wait... The end."),
            ["He paused... then went on.", "Wait...", "The end."]
        );
        assert_eq!(
            texts("Visit example.com today. OK"),
            ["Visit example.com today.", "OK"]
        );
    }

    #[test]
    fn paragraphs_spans_and_line_breaks() {
        let text = "  First one. Second\none.\n\n\nThird one.\n   \nHeading without stop\n";
        let split = split_english(text);
        let got: Vec<(&str, usize)> = split.iter().map(|s| (s.text, s.paragraph)).collect();
        assert_eq!(
            got,
            [
                ("First one.", 0),
                ("Second\none.", 0),
                ("Third one.", 1),
                ("Heading without stop", 2)
            ]
        );
        for s in &split {
            assert_eq!(&text[s.start..s.end], s.text);
        }
    }

    #[test]
    fn empty_and_odd_input() {
        assert!(split_english("").is_empty());
        assert!(split_english(" \n\t\n ").is_empty());
        assert_eq!(texts("..."), ["..."]);
        assert_eq!(
            texts("Één. Twee! Ça va? Ja."),
            ["Één.", "Twee!", "Ça va?", "Ja."]
        );
        assert_eq!(texts("Word"), ["Word"]);
        assert_eq!(texts("Ends with space. "), ["Ends with space."]);
    }
}
