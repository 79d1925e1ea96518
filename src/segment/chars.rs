//! Character classes and small slicing helpers shared by the segmenter's stages.

use std::ops::Range;

/// Whitespace for segmentation purposes: Unicode white space, control characters (which carry no
/// text to translate), the byte-order mark and the zero-width spaces.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '\u{FEFF}' | '\u{200B}' | '\u{2060}')
}

/// Characters that end a line: LF, CR (alone or in CRLF), NEL and the Unicode line and paragraph
/// separators.
pub(crate) fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Horizontal white space: space-like characters that do not end a line.
pub(crate) fn is_blank(c: char) -> bool {
    is_space(c) && !is_line_break(c)
}

/// Punctuation that can end a sentence: Latin, the full-width forms of CJK text
/// ([`is_wide_terminal`]), and the full stops and question marks of other scripts (Devanagari
/// danda, Arabic question mark, Urdu full stop, Armenian, Ethiopic, Myanmar, Khmer, Mongolian).
pub(crate) fn is_terminal(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | '…'
            | '‼'
            | '⁇'
            | '⁈'
            | '⁉'
            | '\u{0964}'
            | '\u{0965}'
            | '\u{061F}'
            | '\u{06D4}'
            | '\u{0589}'
            | '\u{1362}'
            | '\u{1367}'
            | '\u{1368}'
            | '\u{104B}'
            | '\u{17D4}'
            | '\u{1803}'
    ) || is_wide_terminal(c)
}

/// The sentence marks of Chinese and Japanese text (`。`, `！`, `？`, the half-width `｡` and the
/// full-width full stop `．`), which end a sentence with no space after them.
pub(crate) fn is_wide_terminal(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '｡' | '．')
}

/// The first kana of a Japanese quotative particle (`と`, `って`, `という`): after a closing
/// bracket it continues the sentence (`「…。」と彼は言った`), where other kana start a new one
/// (`「…。」それから`).
pub(crate) fn is_quotative(c: char) -> bool {
    matches!(c, 'と' | 'っ')
}

/// Closing quotes and brackets that stay with the sentence they follow (`."`, `.”`, `?)`).
///
/// Opening-style quotes are included because right after a sentence mark they can only close:
/// German-style `„…“` and straight quotes look the same on both sides.
pub(crate) fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '”'
            | '’'
            | '»'
            | '›'
            | '“'
            | '‘'
            | '«'
            | ')'
            | ']'
            | '}'
            | '」'
            | '』'
            | '）'
            | '】'
            | '〕'
            | '〉'
            | '》'
            | '〗'
            | '〙'
            | '〛'
            | '］'
            | '｝'
            | '＂'
            | '＇'
            | '｣'
    )
}

/// Quotes and brackets that may open a sentence, skipped when looking at how it starts.
pub(crate) fn is_opener(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '“'
            | '„'
            | '‘'
            | '‚'
            | '«'
            | '»'
            | '‹'
            | '›'
            | '('
            | '['
            | '{'
            | '¿'
            | '¡'
            | '「'
            | '『'
            | '（'
            | '【'
            | '〔'
            | '〈'
            | '《'
            | '〖'
            | '〘'
            | '〚'
            | '［'
            | '｛'
            | '＂'
            | '＇'
            | '｢'
    )
}

/// Quote characters (both directions); used where a quote, unlike a bracket, marks a sentence end.
pub(crate) fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '”'
            | '’'
            | '»'
            | '›'
            | '“'
            | '‘'
            | '«'
            | '‹'
            | '„'
            | '‚'
            | '「'
            | '」'
            | '『'
            | '』'
            | '＂'
            | '＇'
            | '｢'
            | '｣'
    )
}

/// `range` of `text` with [`is_space`] characters removed from both ends.
pub(crate) fn trim(text: &str, range: Range<usize>) -> Range<usize> {
    let Some(slice) = text.get(range.clone()) else {
        return range.start..range.start;
    };
    let lead = slice.len() - slice.trim_start_matches(is_space).len();
    let trail = slice.len() - slice.trim_end_matches(is_space).len();
    if lead == slice.len() {
        return range.start..range.start;
    }
    range.start + lead..range.end - trail
}

/// The first character at or after byte `at`, if any.
pub(crate) fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|s| s.chars().next())
}

/// The last character before byte `at`, if any.
pub(crate) fn char_before(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|s| s.chars().next_back())
}

/// The first byte at or after `from` (and before `end`) whose character fails `pred`, or `end`.
pub(crate) fn skip_while(
    text: &str,
    from: usize,
    end: usize,
    pred: impl Fn(char) -> bool,
) -> usize {
    let Some(s) = text.get(from..end) else {
        return from;
    };
    s.find(|c: char| !pred(c)).map_or(end, |n| from + n)
}

/// The byte after the line break at `at` (CRLF counts as one), or the end of the text.
pub(crate) fn after_line_break(text: &str, at: usize) -> usize {
    match text.get(at..) {
        Some(s) if s.starts_with("\r\n") => at + 2,
        Some(s) => s.chars().next().map_or(text.len(), |c| at + c.len_utf8()),
        None => text.len(),
    }
}

/// Whether `text[range]` contains a line break.
pub(crate) fn has_line_break(text: &str, range: Range<usize>) -> bool {
    text.get(range)
        .is_some_and(|s| s.chars().any(is_line_break))
}

/// Whether a word starts with a lowercase letter that is nevertheless a normal sentence start in
/// Dutch: elided articles (`'s avonds`, `'t`, `'s-Hertogenbosch`) and brand names with an initial
/// lowercase letter (`iPhone`, `eBay`).
pub(crate) fn is_lowercase_sentence_start(word: &str) -> bool {
    let mut chars = word.chars();
    let (Some(first), Some(second)) = (chars.next(), chars.next()) else {
        return false;
    };
    if matches!(first, '\'' | '’' | '‘') && matches!(second, 's' | 't' | 'n' | 'S' | 'T') {
        return chars.next().is_none_or(|c| !c.is_alphabetic());
    }
    first.is_lowercase() && second.is_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_on_char_boundaries() {
        let t = " \u{FEFF}é a\u{A0}";
        let r = trim(t, 0..t.len());
        assert_eq!(&t[r], "é a");
        assert_eq!(trim("   ", 0..3), 0..0);
    }

    #[test]
    fn lowercase_starts() {
        assert!(is_lowercase_sentence_start("'s-Hertogenbosch"));
        assert!(is_lowercase_sentence_start("’t"));
        assert!(is_lowercase_sentence_start("iPhone"));
        assert!(!is_lowercase_sentence_start("'sochtends"));
        assert!(!is_lowercase_sentence_start("ipad"));
    }
}
