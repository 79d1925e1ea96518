//! Content words of an English sentence, the units the extractive summariser compares sentences
//! by: lowercased, split on anything that is not a letter or digit, stop words and one-letter
//! tokens dropped, optionally Porter-stemmed.

use super::porter;

/// Function words and news boilerplate ("said", "according") that would make any two sentences
/// look alike. Sorted, for binary search; a test keeps it so.
const STOP_WORDS: [&str; 153] = [
    "about",
    "above",
    "according",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "around",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "even",
    "ever",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "last",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "mr",
    "mrs",
    "ms",
    "much",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "said",
    "same",
    "say",
    "says",
    "shall",
    "she",
    "should",
    "so",
    "some",
    "still",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "told",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Whether `word` (lowercase) is on the stop list.
pub(crate) fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// The content words of `sentence`, in order, stemmed when `stem` is set.
///
/// Letters and digits of any script count (`char::is_alphanumeric`), so names such as "Łódź" or
/// "Zelensky's" survive; only ASCII words are stemmed.
pub(crate) fn content_terms(sentence: &str, stem: bool) -> Vec<String> {
    let mut terms = Vec::new();
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if word.chars().nth(1).is_some() && !is_stop_word(word) {
            let term = if stem {
                porter::stem(word)
            } else {
                word.clone()
            };
            terms.push(term);
        }
        word.clear();
    };
    for c in sentence.chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else {
            flush(&mut word);
        }
    }
    flush(&mut word);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_and_unique() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_stop_word("the") && is_stop_word("said") && !is_stop_word("budget"));
    }

    #[test]
    fn content_terms_drop_function_words_and_stem() {
        assert_eq!(
            content_terms("The Minister said taxes were rising in 2024.", true),
            ["minist", "tax", "rise", "2024"]
        );
        assert_eq!(
            content_terms("Zelensky's visit to Łódź, ÉTÉ", false),
            ["zelensky", "visit", "łódź", "été"]
        );
        assert!(content_terms("   ", true).is_empty());
        assert!(content_terms("It was, so it is: a!", true).is_empty());
    }
}
