//! Sentence boundaries inside a run of running text (one or more joined lines of a paragraph).
//!
//! A boundary candidate is sentence punctuation (`.`, `?`, `!`, `…`, `...`), optionally followed by
//! closing quotes and brackets, followed by white space. Whether the candidate is a boundary
//! depends on the punctuation, on the word before it (see [`abbrev::classify`]) and on how the next
//! word starts; a line break in the white space counts in favour of a boundary. Each candidate looks
//! at a bounded window around it, so a run is split in time linear in its length.

use std::ops::Range;

use super::abbrev::{self, TokenClass};
use super::chars::{
    char_at, char_before, has_line_break, is_closer, is_lowercase_sentence_start, is_opener,
    is_quotative, is_quote, is_space, is_terminal, is_wide_terminal, skip_while, trim,
};
use super::english;
use super::language::Rules;

/// The longest word examined before a full stop; longer words are ordinary words (abbreviations
/// and initials are short, and the bound keeps pathological input linear).
const MAX_TOKEN_CHARS: usize = 48;

/// How the text after a candidate boundary starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A capital, or a lowercase word that is a normal sentence start (`'s avonds`, `iPhone`).
    Upper,
    /// A lowercase letter.
    Lower,
    /// A digit.
    Digit,
    /// Anything else: a symbol, a dash, a letter without case.
    Other,
}

/// What follows a candidate: how it starts and its first word (for the starter checks).
struct Next<'a> {
    start: Start,
    word: &'a str,
    /// Whether a full stop follows the word directly (`U.` is an initial, not the pronoun).
    dotted: bool,
}

/// Appends the trimmed sentences of `text[run]` to `out`, in order, by the `rules` of a
/// language.
pub(crate) fn split_sentences(
    text: &str,
    run: Range<usize>,
    rules: Rules,
    out: &mut Vec<Range<usize>>,
) {
    let end = run.end.min(text.len());
    let mut sentence_start = run.start;
    let mut i = run.start;
    while i < end {
        let Some(c) = char_at(text, i) else { break };
        if !is_terminal(c) {
            i += c.len_utf8();
            continue;
        }
        let term_start = i;
        let term_end = skip_while(text, i, end, is_terminal);
        let close_end = skip_while(text, term_end, end, is_closer);
        // Punctuation that opens the sentence ("... Hij ging weg.") ends nothing.
        if term_start == sentence_start {
            i = close_end;
            continue;
        }
        match char_at(text, close_end) {
            Some(c) if close_end < end && is_space(c) => {}
            Some(c)
                if close_end < end
                    && wide_boundary(text, term_start..term_end, term_end..close_end, c) =>
            {
                let sentence = trim(text, sentence_start..close_end);
                if !sentence.is_empty() {
                    out.push(sentence);
                }
                sentence_start = close_end;
                i = close_end;
                continue;
            }
            Some(_)
                if close_end == term_end
                    && missing_space(text, sentence_start, term_start..term_end, end) =>
            {
                let sentence = trim(text, sentence_start..term_end);
                if !sentence.is_empty() {
                    out.push(sentence);
                }
                sentence_start = term_end;
                i = term_end;
                continue;
            }
            _ => {
                i = close_end;
                continue;
            }
        }
        let mut next_start = skip_while(text, close_end, end, is_space);
        if next_start >= end {
            break;
        }
        let mut sentence_end = close_end;
        // Emoji and other pictographs right after the punctuation stay with the sentence they
        // comment on: "Wat een feest! 🥳 De burgemeester ..."
        if !has_line_break(text, close_end..next_start) {
            while let Some(after) = pictograph_token(text, next_start, end) {
                let following = skip_while(text, after, end, is_space);
                if following >= end || following == after {
                    break;
                }
                sentence_end = after;
                next_start = following;
            }
        }
        // No sentence starts with sentence punctuation, ". . ." is one spaced ellipsis, except
        // that a sentence may open with an ellipsis: "Het was stil. ... Hij ging weg." The
        // word after the ellipsis then decides; a lowercase one opens a fragment.
        let mut next = None;
        if char_at(text, next_start).is_some_and(is_terminal) {
            match opening_ellipsis(text, next_start, end) {
                Some(word_start) => {
                    let mut word = next_word(text, word_start, end);
                    if word.start == Start::Lower {
                        word.start = Start::Other;
                    }
                    next = Some(word);
                }
                None => {
                    i = next_start;
                    continue;
                }
            }
        }
        let line_break = has_line_break(text, close_end..next_start);
        let candidate = Candidate {
            text,
            rules,
            sentence_start,
            term: term_start..term_end,
            closers: term_end..close_end,
            line_break,
        };
        let next = next.unwrap_or_else(|| next_word(text, next_start, end));
        if candidate.is_boundary(&next) {
            let sentence = trim(text, sentence_start..sentence_end);
            if !sentence.is_empty() {
                out.push(sentence);
            }
            sentence_start = next_start;
        }
        i = next_start;
    }
    let last = trim(text, sentence_start..end);
    if !last.is_empty() {
        out.push(last);
    }
}

/// One candidate boundary and what surrounds it.
struct Candidate<'a> {
    text: &'a str,
    /// The language's rule set.
    rules: Rules,
    /// Where the current sentence began (the word before the punctuation is looked for after it).
    sentence_start: usize,
    /// The sentence punctuation.
    term: Range<usize>,
    /// Closing quotes and brackets after it.
    closers: Range<usize>,
    /// Whether the white space after it holds a line break.
    line_break: bool,
}

impl Candidate<'_> {
    fn is_boundary(&self, next: &Next<'_>) -> bool {
        let term = &self.text[self.term.clone()];
        let closers = &self.text[self.closers.clone()];
        let capital_or_symbol = matches!(next.start, Start::Upper | Start::Other);
        let any_start = !matches!(next.start, Start::Lower);
        // After `?`, `!` and ellipses a lowercase word continues the sentence even across a line
        // break ("„Waarom?” vroeg hij", "Hij dacht na…\nen bleef"); so it does after the marks
        // of other scripts (`。`, `।`), which are mostly followed by letters without case.
        if term.contains(['?', '!', '‼', '⁇', '⁈', '⁉']) || !term.contains(['.', '…']) {
            return any_start;
        }
        if term.contains('…') || term.len() > 1 {
            // "(...)" and "[…]" mark left-out words inside a quote, not an end.
            let bracketed = matches!(char_before(self.text, self.term.start), Some('(' | '['))
                && closers.starts_with([')', ']']);
            return !bracketed && any_start;
        }
        let token_range = self.token_before(self.term.start);
        let token = token_range.clone().map_or("", |r| &self.text[r]);
        let has_closer = !closers.is_empty();
        // A word that starts sentences and is never part of a name (`U.` is an initial).
        let starter = !next.dotted
            && match self.rules {
                Rules::Dutch => abbrev::is_non_name_starter(next.word),
                Rules::English => english::is_opener_word(next.word),
                Rules::Generic => false,
            };
        let class = match self.rules {
            Rules::Dutch => {
                abbrev::classify_in_context(token, self.word_before(token_range.clone()))
            }
            Rules::English => english::classify(token),
            Rules::Generic => abbrev::classify_generic(token),
        };
        match class {
            TokenClass::Title => next.start == Start::Upper && (has_closer || starter),
            TokenClass::Prefix => has_closer && next.start == Start::Upper,
            TokenClass::Final | TokenClass::Dotted => capital_or_symbol,
            TokenClass::Initials => {
                next.start == Start::Upper && (closers.contains(is_quote) || starter)
            }
            TokenClass::SingleLower => {
                let before = self.word_before(token_range);
                next.start == Start::Upper
                    && (abbrev::classify(before) == TokenClass::Number || self.line_break)
                    && next.word != "Chr"
            }
            TokenClass::Number => !self.is_enumerator(token_range) && any_start,
            TokenClass::Ordinary => any_start || self.line_break,
        }
    }

    /// The range of the word that ends at byte `end` (after the current sentence's start), or
    /// `None` when it is longer than [`MAX_TOKEN_CHARS`].
    fn token_before(&self, end: usize) -> Option<Range<usize>> {
        let before = self.text.get(self.sentence_start..end)?;
        let mut start = end;
        for (n, c) in before.chars().rev().enumerate() {
            if is_space(c) {
                break;
            }
            if n >= MAX_TOKEN_CHARS {
                return None;
            }
            start -= c.len_utf8();
        }
        Some(start..end)
    }

    /// The word before the word at `token`, or "" at the sentence start.
    fn word_before(&self, token: Option<Range<usize>>) -> &str {
        let Some(token) = token else { return "" };
        let Some(before) = self.text.get(self.sentence_start..token.start) else {
            return "";
        };
        let trimmed = before.trim_end_matches(is_space);
        if trimmed.is_empty() {
            return "";
        }
        self.token_before(self.sentence_start + trimmed.len())
            .map_or("", |r| &self.text[r])
    }

    /// A short number that labels an item of an inline enumeration ("drie dingen: 1. Meer geld,
    /// 2. Lagere huren en 3. Betere treinen") rather than ending a sentence.
    fn is_enumerator(&self, token: Option<Range<usize>>) -> bool {
        if token.as_ref().is_none_or(|t| t.len() > 2) {
            return false;
        }
        let before = self.word_before(token);
        before.is_empty()
            || before.ends_with([':', ',', ';'])
            || matches!(before.to_lowercase().as_str(), "en" | "of")
    }
}

/// Whether sentence punctuation at `term` (with closing quotes and brackets at `closers`) that is
/// directly followed by the character `next` ends a sentence: Chinese and Japanese sentence
/// marks (`。`, `！`, `？`) need no space after them, as in Unicode's sentence boundaries (UAX
/// #29). Not between two digits (`１．５`), and not before a quotative particle after a closing
/// bracket or quote, which goes on with the sentence (`「本当ですか。」と聞いた`).
fn wide_boundary(text: &str, term: Range<usize>, closers: Range<usize>, next: char) -> bool {
    let Some(marks) = text.get(term.clone()) else {
        return false;
    };
    if !marks.chars().any(is_wide_terminal) {
        return false;
    }
    if next.is_numeric() && char_before(text, term.start).is_some_and(char::is_numeric) {
        return false;
    }
    closers.is_empty() || !is_quotative(next)
}

/// Whether sentence punctuation at `term` that is directly followed by text ends a sentence all
/// the same, because a space was left out: "te laat.Daarna". Only a plain lowercase word before
/// it and a plain capitalised word after it qualify, so that domain names (`nos.nl`), URLs, file
/// names, abbreviations (`o.a.`) and initials (`J.P.`) never do.
fn missing_space(text: &str, sentence_start: usize, term: Range<usize>, end: usize) -> bool {
    if text
        .get(term.clone())
        .is_none_or(|t| t.chars().count() != 1)
    {
        return false;
    }
    let before = text.get(sentence_start..term.start).unwrap_or_default();
    let word_before = before.rsplit(is_space).next().unwrap_or_default();
    let plain_before = word_before.chars().count() >= 2
        && word_before
            .chars()
            .all(|c| c.is_alphabetic() && !c.is_uppercase())
        && abbrev::classify(word_before) == TokenClass::Ordinary;
    if !plain_before {
        return false;
    }
    let after = text.get(term.end..end).unwrap_or_default();
    let word_after = after.split(is_space).next().unwrap_or_default();
    let word_after =
        word_after.trim_end_matches(|c: char| is_terminal(c) || is_closer(c) || c == ',');
    let mut chars = word_after.chars();
    chars.next().is_some_and(char::is_uppercase)
        && word_after.chars().count() >= 3
        && chars.all(|c| c.is_alphabetic() && c.is_lowercase())
}

/// Reads how the text at `at` starts: quotes and brackets are skipped, except that an elided
/// article (`'s`, `'t`) is itself a sentence start.
fn next_word(text: &str, at: usize, end: usize) -> Next<'_> {
    let word_at = |from: usize| -> &str {
        let stop = text
            .get(from..end)
            .and_then(|s| s.find(|c: char| !c.is_alphanumeric()))
            .map_or(end, |n| from + n);
        text.get(from..stop).unwrap_or_default()
    };
    let first_token = text
        .get(at..end)
        .map(|s| s.split(is_space).next().unwrap_or_default())
        .unwrap_or_default();
    if is_lowercase_sentence_start(first_token) {
        return Next {
            start: Start::Upper,
            word: first_token,
            dotted: false,
        };
    }
    let mut pos = at;
    for _ in 0..4 {
        match char_at(text, pos) {
            Some(c) if pos < end && is_opener(c) => pos += c.len_utf8(),
            _ => break,
        }
    }
    let word = word_at(pos);
    let start = match char_at(text, pos) {
        Some(c) if c.is_uppercase() => Start::Upper,
        Some(c) if c.is_lowercase() => {
            if is_lowercase_sentence_start(word) {
                Start::Upper
            } else {
                Start::Lower
            }
        }
        Some(c) if c.is_numeric() => Start::Digit,
        _ => Start::Other,
    };
    let dotted = char_at(text, pos + word.len()) == Some('.');
    Next {
        start,
        word,
        dotted,
    }
}

/// If an ellipsis (`…`, `……`, three or more full stops) that opens a sentence starts at `at`,
/// where the sentence's first word starts: after any white space, when a letter, digit, quote or
/// bracket follows. `None` for anything else, such as the dots of a spaced ellipsis (`. . .`).
fn opening_ellipsis(text: &str, at: usize, end: usize) -> Option<usize> {
    let after = skip_while(text, at, end, |c| c == '.' || c == '…');
    let marks = text.get(at..after)?;
    let dots = marks.chars().filter(|&c| c == '.').count();
    if !(marks.contains('…') || dots >= 3) {
        return None;
    }
    let word_start = skip_while(text, after, end, is_space);
    let opens = char_at(text, word_start)
        .is_some_and(|c| word_start < end && (c.is_alphanumeric() || is_opener(c)));
    opens.then_some(word_start)
}

/// If a token of pictographs (emoji, dingbats) starts at `at`, the byte after it.
fn pictograph_token(text: &str, at: usize, end: usize) -> Option<usize> {
    let after = skip_while(text, at, end, |c| !is_space(c));
    let token = text.get(at..after)?;
    (!token.is_empty() && token.chars().all(is_pictograph)).then_some(after)
}

/// Emoji, their modifiers and joiners, and the symbol blocks used like them.
fn is_pictograph(c: char) -> bool {
    matches!(c as u32,
        0x2190..=0x2BFF | 0x1F000..=0x1FAFF | 0xFE0F | 0x200D | 0xE0020..=0xE007F | 0x00A9 | 0x00AE | 0x2122)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        split_by(text, Rules::Dutch)
    }

    fn split_by(text: &str, rules: Rules) -> Vec<&str> {
        let mut out = Vec::new();
        split_sentences(text, 0..text.len(), rules, &mut out);
        out.into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn basic() {
        assert_eq!(
            split("Een. Twee? Drie! Vier"),
            ["Een.", "Twee?", "Drie!", "Vier"]
        );
        assert_eq!(split("Een.Twee. "), ["Een.Twee."]);
        assert_eq!(split(""), Vec::<&str>::new());
        assert_eq!(split(". . ."), [". . ."]);
    }

    #[test]
    fn abbreviation_then_capital() {
        assert_eq!(
            split("Kaas enz. Daarna brood."),
            ["Kaas enz.", "Daarna brood."]
        );
        assert_eq!(split("Met dhr. Jansen. Hij"), ["Met dhr. Jansen.", "Hij"]);
    }

    #[test]
    fn ellipsis_opening_a_sentence() {
        assert_eq!(split("Stil. ... Weg."), ["Stil.", "... Weg."]);
        assert_eq!(split("Stil. …weg."), ["Stil.", "…weg."]);
        assert_eq!(split("... Weg. Daar."), ["... Weg.", "Daar."]);
        assert_eq!(split("Stil . . . weg."), ["Stil . . . weg."]);
        assert_eq!(split("Stil. ..."), ["Stil. ..."]);
    }

    #[test]
    fn long_tokens_are_ordinary() {
        let word = "x".repeat(200);
        let text = format!("{word}. Daarna");
        assert_eq!(split(&text).len(), 2);
    }
}
