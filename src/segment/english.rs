//! English abbreviations and sentence openers: the segmenter's English rules and the English
//! sentence splitter of the summariser ([`crate::summarize::split_english`]) share these lists.
//! Each is sorted, for binary search.

use super::abbrev::{self, TokenClass};

/// Abbreviations that are followed by a name, never by a new sentence (compared in lower case).
pub(crate) const TITLES: [&str; 30] = [
    "adm", "brig", "capt", "cmdr", "col", "cpl", "det", "dr", "drs", "gen", "gov", "hon", "insp",
    "lt", "maj", "messrs", "mme", "mr", "mrs", "ms", "mssrs", "pres", "prof", "pvt", "rep", "rev",
    "sen", "sgt", "supt", "vs",
];

/// Abbreviations that can end a sentence (compared in lower case).
pub(crate) const AMBIGUOUS: [&str; 44] = [
    "al", "approx", "apr", "aug", "ave", "blvd", "ca", "cf", "co", "corp", "dec", "dept", "est",
    "etc", "feb", "fig", "ft", "inc", "jan", "jr", "jul", "jun", "km", "lb", "ltd", "mar", "mt",
    "no", "nos", "nov", "oct", "op", "pp", "rd", "sep", "sept", "sq", "sr", "st", "tel", "vol",
    "vols", "wk", "yr",
];

/// Words that typically open a sentence (compared in lower case); after an ambiguous
/// abbreviation they signal a sentence boundary.
pub(crate) const OPENERS: [&str; 72] = [
    "a",
    "according",
    "after",
    "all",
    "also",
    "although",
    "an",
    "and",
    "as",
    "at",
    "because",
    "before",
    "both",
    "but",
    "by",
    "despite",
    "dr",
    "during",
    "each",
    "for",
    "from",
    "he",
    "her",
    "here",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "it",
    "its",
    "last",
    "many",
    "meanwhile",
    "most",
    "mr",
    "mrs",
    "ms",
    "my",
    "next",
    "no",
    "nor",
    "now",
    "on",
    "one",
    "or",
    "our",
    "she",
    "since",
    "so",
    "some",
    "still",
    "that",
    "the",
    "their",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "today",
    "under",
    "we",
    "what",
    "when",
    "while",
    "who",
    "with",
    "yet",
];

/// Classifies the word before a full stop by the English rules: titles (`Mr.`, `Dr.`) are
/// followed by a name; abbreviations that can end a sentence (`etc.`, `Inc.`, `Jan.`), initials
/// (`F.`) and initialisms (`U.S.`) end one only before a sentence opener, which is how the
/// segmenter treats [`TokenClass::Initials`]; the rest as the language-independent rules say.
pub(crate) fn classify(token: &str) -> TokenClass {
    let bare = token.trim_start_matches(crate::segment::chars::is_opener);
    let lower = bare.to_lowercase();
    if in_list(&TITLES, &lower) {
        return TokenClass::Title;
    }
    if in_list(&AMBIGUOUS, &lower) {
        return TokenClass::Initials;
    }
    abbrev::classify_generic(token)
}

/// Whether `word` is a typical sentence opener ("The", "He", "But", ...).
pub(crate) fn is_opener_word(word: &str) -> bool {
    in_list(&OPENERS, &word.to_lowercase())
}

/// Whether `word` is in the sorted `list`.
pub(crate) fn in_list(list: &[&str], word: &str) -> bool {
    list.binary_search(&word).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_are_sorted() {
        for list in [&TITLES[..], &AMBIGUOUS[..], &OPENERS[..]] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }
}
