//! The Moses punctuation normaliser, as sacremoses 0.2 `MosesPunctNormalizer(lang).normalize`
//! runs it with its defaults (`penn=True`, `norm_quote_commas=True`, `norm_numbers=True`, no
//! pre/post steps, no perl parity); a port of Moses' `normalize-punctuation.perl`.
//!
//! OPUS-MT's training pipeline ran this before SentencePiece; transformers' `MarianTokenizer`
//! defines it but does not call it when encoding, so tolk applies it only on request
//! ([`super::MarianTokenizer::with_punct_normalization`]).
//!
//! Each rule is one of sacremoses' regular expressions, applied to the whole text in order with
//! Python `re.sub` semantics (leftmost, non-overlapping matches). `\d` is Python's Unicode
//! decimal digit and `\s` and the final `strip()` use Python's whitespace, so those are
//! reproduced with tables from Python 3.11 (Unicode 14.0).

/// One substitution of sacremoses' list.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// A plain string replacement.
    Lit(&'static str, &'static str),
    /// `" +"` → `" "`.
    SpaceRun,
    /// `"\) ([.!:?;,])"` → `")\1"`.
    CloseParenPunct,
    /// `"(\d) %"` → `"\1%"`.
    DigitSpacePercent,
    /// `"([a-zA-Z])Q([a-zA-Z])"` → `"\1'\2"` for the quote `Q`.
    LetterQuoteLetter(char),
    /// `'"([,.]+)'` → `'\1"'` (English).
    QuoteThenCommas,
    /// `'(\.+)"(\s*[^<])'` → `'"\1\2'` (German, Spanish, French).
    DotsQuote,
    /// `"(\d)\u00A0(\d)"` → `"\1S\2"` with the separator `S`.
    DigitNbspDigit(char),
}

use Rule::*;

const EXTRA_WHITESPACE: &[Rule] = &[
    Lit("\r", ""),
    Lit("(", " ("),
    Lit(")", ") "),
    SpaceRun,
    CloseParenPunct,
    Lit("( ", "("),
    Lit(" )", ")"),
    DigitSpacePercent,
    Lit(" :", ":"),
    Lit(" ;", ";"),
];

/// Added when `penn` is true (sacremoses' name for it says the opposite).
const NORMALIZE_UNICODE_IF_NOT_PENN: &[Rule] = &[Lit("`", "'"), Lit("''", " \" ")];

const NORMALIZE_UNICODE: &[Rule] = &[
    Lit("„", "\""),
    Lit("“", "\""),
    Lit("”", "\""),
    Lit("–", "-"),
    Lit("—", " - "),
    SpaceRun,
    Lit("´", "'"),
    LetterQuoteLetter('‘'),
    LetterQuoteLetter('’'),
    Lit("‘", "'"),
    Lit("‚", "'"),
    Lit("’", "'"),
    Lit("''", "\""),
    Lit("´´", "\""),
    Lit("…", "..."),
];

const FRENCH_QUOTES: &[Rule] = &[
    Lit("\u{A0}«\u{A0}", "\""),
    Lit("«\u{A0}", "\""),
    Lit("«", "\""),
    Lit("\u{A0}»\u{A0}", "\""),
    Lit("\u{A0}»", "\""),
    Lit("»", "\""),
];

const HANDLE_PSEUDO_SPACES: &[Rule] = &[
    Lit("\u{A0}%", "%"),
    Lit("nº\u{A0}", "nº "),
    Lit("\u{A0}:", ":"),
    Lit("\u{A0}ºC", " ºC"),
    Lit("\u{A0}cm", " cm"),
    Lit("\u{A0}?", "?"),
    Lit("\u{A0}!", "!"),
    Lit("\u{A0};", ";"),
    Lit(",\u{A0}", ", "),
    SpaceRun,
];

const EN_QUOTATION_FOLLOWED_BY_COMMA: &[Rule] = &[QuoteThenCommas];
const DE_ES_FR_QUOTATION_FOLLOWED_BY_COMMA: &[Rule] = &[Lit(",\"", "\","), DotsQuote];

/// Moses' punctuation normaliser for one language. Immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct MosesPunctNormalizer {
    rules: Vec<Rule>,
}

impl MosesPunctNormalizer {
    /// The normaliser sacremoses builds for `lang` (a two-letter code such as `"nl"`; `None`, like
    /// sacremoses' `lang=None`, gets the rules of every language without special cases).
    pub fn new(lang: Option<&str>) -> Self {
        let mut rules = Vec::new();
        rules.extend_from_slice(EXTRA_WHITESPACE);
        rules.extend_from_slice(NORMALIZE_UNICODE_IF_NOT_PENN);
        rules.extend_from_slice(NORMALIZE_UNICODE);
        rules.extend_from_slice(FRENCH_QUOTES);
        rules.extend_from_slice(HANDLE_PSEUDO_SPACES);
        match lang {
            Some("en") => rules.extend_from_slice(EN_QUOTATION_FOLLOWED_BY_COMMA),
            Some("de" | "es" | "fr") => {
                rules.extend_from_slice(DE_ES_FR_QUOTATION_FOLLOWED_BY_COMMA)
            }
            _ => {}
        }
        match lang {
            Some("de" | "es" | "cz" | "cs" | "fr") => rules.push(DigitNbspDigit(',')),
            _ => rules.push(DigitNbspDigit('.')),
        }
        MosesPunctNormalizer { rules }
    }

    /// Normalises punctuation and spacing, then strips surrounding whitespace.
    pub fn normalize(&self, text: &str) -> String {
        let mut text = text.to_string();
        for rule in &self.rules {
            if may_match(*rule, &text) {
                text = apply(*rule, &text);
            }
        }
        py_strip(&text).to_string()
    }
}

/// Python's `str.isspace()` (also what `\s` matches in a `str` pattern).
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

/// Python's `str.strip()`.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// Python's `str.isdecimal()` (what `\d` matches in a `str` pattern), from Python 3.11's
/// Unicode 14.0 tables: every range is a block of ten digits.
fn py_isdecimal(c: char) -> bool {
    const RANGES: &[(u32, u32)] = &[
        (0x30, 0x39),
        (0x660, 0x669),
        (0x6F0, 0x6F9),
        (0x7C0, 0x7C9),
        (0x966, 0x96F),
        (0x9E6, 0x9EF),
        (0xA66, 0xA6F),
        (0xAE6, 0xAEF),
        (0xB66, 0xB6F),
        (0xBE6, 0xBEF),
        (0xC66, 0xC6F),
        (0xCE6, 0xCEF),
        (0xD66, 0xD6F),
        (0xDE6, 0xDEF),
        (0xE50, 0xE59),
        (0xED0, 0xED9),
        (0xF20, 0xF29),
        (0x1040, 0x1049),
        (0x1090, 0x1099),
        (0x17E0, 0x17E9),
        (0x1810, 0x1819),
        (0x1946, 0x194F),
        (0x19D0, 0x19D9),
        (0x1A80, 0x1A89),
        (0x1A90, 0x1A99),
        (0x1B50, 0x1B59),
        (0x1BB0, 0x1BB9),
        (0x1C40, 0x1C49),
        (0x1C50, 0x1C59),
        (0xA620, 0xA629),
        (0xA8D0, 0xA8D9),
        (0xA900, 0xA909),
        (0xA9D0, 0xA9D9),
        (0xA9F0, 0xA9F9),
        (0xAA50, 0xAA59),
        (0xABF0, 0xABF9),
        (0xFF10, 0xFF19),
        (0x104A0, 0x104A9),
        (0x10D30, 0x10D39),
        (0x11066, 0x1106F),
        (0x110F0, 0x110F9),
        (0x11136, 0x1113F),
        (0x111D0, 0x111D9),
        (0x112F0, 0x112F9),
        (0x11450, 0x11459),
        (0x114D0, 0x114D9),
        (0x11650, 0x11659),
        (0x116C0, 0x116C9),
        (0x11730, 0x11739),
        (0x118E0, 0x118E9),
        (0x11950, 0x11959),
        (0x11C50, 0x11C59),
        (0x11D50, 0x11D59),
        (0x11DA0, 0x11DA9),
        (0x16A60, 0x16A69),
        (0x16AC0, 0x16AC9),
        (0x16B50, 0x16B59),
        (0x1D7CE, 0x1D7FF),
        (0x1E140, 0x1E149),
        (0x1E2F0, 0x1E2F9),
        (0x1E950, 0x1E959),
        (0x1FBF0, 0x1FBF9),
    ];
    let c = u32::from(c);
    if c < 0x80 {
        return (0x30..=0x39).contains(&c);
    }
    RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `rule` can match anywhere in `text` (a cheap test that spares most copies).
fn may_match(rule: Rule, text: &str) -> bool {
    match rule {
        Lit(from, _) => text.contains(from),
        // Single spaces are replaced by themselves.
        SpaceRun => text.contains("  "),
        CloseParenPunct => text.contains(") "),
        DigitSpacePercent => text.contains(" %"),
        LetterQuoteLetter(q) => text.contains(q),
        QuoteThenCommas => text.contains('"'),
        DotsQuote => text.contains(".\""),
        DigitNbspDigit(_) => text.contains('\u{A0}'),
    }
}

/// Applies one rule to the whole text.
fn apply(rule: Rule, text: &str) -> String {
    match rule {
        Lit(from, to) => text.replace(from, to),
        _ => {
            let mut out = String::with_capacity(text.len());
            let mut rest = text;
            while let Some(c) = rest.chars().next() {
                if let Some(len) = match_at(rule, rest, &mut out) {
                    rest = &rest[len..];
                } else {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
            out
        }
    }
}

/// If `rule` matches at the start of `s`, appends its replacement to `out` and returns the
/// length of the match.
fn match_at(rule: Rule, s: &str, out: &mut String) -> Option<usize> {
    let mut chars = s.char_indices();
    let (_, first) = chars.next()?;
    match rule {
        Lit(..) => None,
        SpaceRun => {
            let len = s.len() - s.trim_start_matches(' ').len();
            (len > 0).then(|| {
                out.push(' ');
                len
            })
        }
        CloseParenPunct => {
            let rest = s.strip_prefix(") ")?;
            let c = rest.chars().next()?;
            ".!:?;,".contains(c).then(|| {
                out.push(')');
                out.push(c);
                3
            })
        }
        DigitSpacePercent => {
            if !py_isdecimal(first) || !s[first.len_utf8()..].starts_with(" %") {
                return None;
            }
            out.push(first);
            out.push('%');
            Some(first.len_utf8() + 2)
        }
        LetterQuoteLetter(q) => {
            let (_, mid) = chars.next()?;
            let (_, last) = chars.next()?;
            if first.is_ascii_alphabetic() && mid == q && last.is_ascii_alphabetic() {
                out.push(first);
                out.push('\'');
                out.push(last);
                Some(1 + q.len_utf8() + 1)
            } else {
                None
            }
        }
        QuoteThenCommas => {
            let rest = s.strip_prefix('"')?;
            let run = rest.len() - rest.trim_start_matches([',', '.']).len();
            (run > 0).then(|| {
                out.push_str(&rest[..run]);
                out.push('"');
                1 + run
            })
        }
        DotsQuote => {
            let dots = s.len() - s.trim_start_matches('.').len();
            if dots == 0 {
                return None;
            }
            let after_quote = s[dots..].strip_prefix('"')?;
            let ws = after_quote.len() - after_quote.trim_start_matches(py_isspace).len();
            let tail_len = match after_quote[ws..].chars().next() {
                Some(c) if c != '<' => ws + c.len_utf8(),
                // `\s*` gives its last character back to `[^<]`.
                _ if ws > 0 => ws,
                _ => return None,
            };
            out.push('"');
            out.push_str(&s[..dots]);
            out.push_str(&after_quote[..tail_len]);
            Some(dots + 1 + tail_len)
        }
        DigitNbspDigit(sep) => {
            let (_, nbsp) = chars.next()?;
            let (_, second) = chars.next()?;
            if py_isdecimal(first) && nbsp == '\u{A0}' && py_isdecimal(second) {
                out.push(first);
                out.push(sep);
                out.push(second);
                Some(first.len_utf8() + 2 + second.len_utf8())
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dutch_rules() {
        let n = MosesPunctNormalizer::new(Some("nl"));
        assert_eq!(
            n.normalize("„Ja” zei hij (echt) ."),
            "\"Ja\" zei hij (echt)."
        );
        assert_eq!(n.normalize("1\u{A0}2\u{A0}3"), "1.2\u{A0}3");
        assert_eq!(n.normalize("  a   b \r\n"), "a b");
        assert_eq!(n.normalize("5 % en 1995–2000"), "5% en 1995-2000");
        assert_eq!(n.normalize(""), "");
    }

    #[test]
    fn language_specific_rules() {
        assert_eq!(
            MosesPunctNormalizer::new(Some("en")).normalize("\"Yes\", \"no\"."),
            "\"Yes,\" \"no.\""
        );
        let de = MosesPunctNormalizer::new(Some("de"));
        assert_eq!(
            de.normalize("Ja,\" sagt er...\" nein"),
            "Ja\", sagt er\"... nein"
        );
        assert_eq!(de.normalize("1\u{A0}000"), "1,000");
    }

    #[test]
    fn python_character_classes() {
        assert!(py_isdecimal('7') && py_isdecimal('٣') && py_isdecimal('𝟘'));
        assert!(!py_isdecimal('½') && !py_isdecimal('²') && !py_isdecimal('a'));
        assert!(py_isspace('\u{1F}') && py_isspace('\u{A0}') && !py_isspace('\u{200B}'));
    }
}
