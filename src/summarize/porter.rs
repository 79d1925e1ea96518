//! The Porter stemmer in NLTK's default flavour (`NLTK_EXTENSIONS`), the one Google's
//! `rouge-score` uses for `use_stemmer=True`; the extractive summariser uses it too.
//!
//! M. F. Porter, "An algorithm for suffix stripping", Program 14(3), 1980, with the deviations
//! NLTK 3.x makes (`nltk/stem/porter.py`): a table of irregular forms, `ies`/`ied` on
//! four-letter words, `y -> i` only after a consonant, `alli` tried first in step 2, `fulli`
//! and `logi`, and two-letter `*o` stems. Checked word for word against NLTK 3.10.4 (see the
//! tests and `tests/data/summarize/README.md`).
//!
//! Only ASCII words are stemmed; anything else is returned unchanged, which is what callers
//! want for names and for words in other scripts.

/// NLTK's irregular forms: the word on the left stems to the word on the right.
const IRREGULAR: [(&str, &str); 16] = [
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

/// Stems one lowercase word.
///
/// Words with characters outside ASCII, and words of one or two characters, come back as they
/// are. Upper-case ASCII letters are lowercased first, as NLTK does.
pub(crate) fn stem(word: &str) -> String {
    if !word.is_ascii() {
        return word.to_string();
    }
    let lower = word.to_ascii_lowercase();
    if let Some((_, target)) = IRREGULAR.iter().find(|(form, _)| *form == lower) {
        return (*target).to_string();
    }
    if lower.len() <= 2 {
        return lower;
    }
    let mut w = lower.into_bytes();
    step1a(&mut w);
    step1b(&mut w);
    step1c(&mut w);
    step2(&mut w);
    step3(&mut w);
    step4(&mut w);
    step5a(&mut w);
    step5b(&mut w);
    // Only ASCII bytes were ever written, so this cannot fail; fall back to lossless anyway.
    String::from_utf8(w).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// Consonant or not for every position: `y` is a consonant at the start of a word and after a
/// vowel, a vowel after a consonant.
fn consonant_flags(w: &[u8]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for &b in w {
        let consonant = if is_vowel(b) {
            false
        } else if b == b'y' {
            flags.last().is_none_or(|previous| !previous)
        } else {
            true
        };
        flags.push(consonant);
    }
    flags
}

/// Whether the last letter of `w` is a consonant (false for an empty word).
fn ends_with_consonant(w: &[u8]) -> bool {
    consonant_flags(w).last().copied().unwrap_or(false)
}

/// Porter's *m*: the number of vowel-consonant transitions.
fn measure(w: &[u8]) -> usize {
    consonant_flags(w)
        .windows(2)
        .filter(|pair| !pair[0] && pair[1])
        .count()
}

fn contains_vowel(w: &[u8]) -> bool {
    consonant_flags(w).iter().any(|c| !c)
}

/// Porter's `*d`: the word ends in a doubled consonant.
fn ends_double_consonant(w: &[u8]) -> bool {
    match w {
        [.., a, b] if a == b => ends_with_consonant(w),
        _ => false,
    }
}

/// Porter's `*o`: consonant-vowel-consonant at the end, the last not `w`, `x` or `y`; NLTK also
/// accepts a two-letter vowel-consonant word.
fn ends_cvc(w: &[u8]) -> bool {
    let flags = consonant_flags(w);
    match (flags.as_slice(), w.last()) {
        ([.., true, false, true], Some(last)) => !matches!(last, b'w' | b'x' | b'y'),
        ([false, true], _) => true,
        _ => false,
    }
}

/// The condition a suffix rule puts on the stem that remains once the suffix is removed.
#[derive(Clone, Copy)]
enum Cond {
    None,
    MeasureAbove0,
    MeasureAbove1,
    /// Step 4's `(m>1 and (*S or *T)) ION`.
    Ion,
    /// NLTK's `logi -> log` keeps the `l` with the stem when measuring it.
    Logi,
}

fn holds(cond: Cond, stem: &[u8]) -> bool {
    match cond {
        Cond::None => true,
        Cond::MeasureAbove0 => measure(stem) > 0,
        Cond::MeasureAbove1 => measure(stem) > 1,
        Cond::Ion => measure(stem) > 1 && matches!(stem.last(), Some(b's' | b't')),
        Cond::Logi => {
            let mut with_l = stem.to_vec();
            with_l.push(b'l');
            measure(&with_l) > 0
        }
    }
}

/// Applies the first rule whose suffix matches; when its condition fails no later rule is tried,
/// as in Porter's paper. Returns whether a suffix matched.
fn apply_rules(w: &mut Vec<u8>, rules: &[(&str, &str, Cond)]) -> bool {
    for &(suffix, replacement, cond) in rules {
        if w.ends_with(suffix.as_bytes()) {
            let stem_len = w.len() - suffix.len();
            if holds(cond, &w[..stem_len]) {
                w.truncate(stem_len);
                w.extend_from_slice(replacement.as_bytes());
            }
            return true;
        }
    }
    false
}

fn replace_suffix(w: &mut Vec<u8>, suffix_len: usize, replacement: &str) {
    w.truncate(w.len().saturating_sub(suffix_len));
    w.extend_from_slice(replacement.as_bytes());
}

fn step1a(w: &mut Vec<u8>) {
    if w.ends_with(b"ies") && w.len() == 4 {
        replace_suffix(w, 3, "ie");
        return;
    }
    apply_rules(
        w,
        &[
            ("sses", "ss", Cond::None),
            ("ies", "i", Cond::None),
            ("ss", "ss", Cond::None),
            ("s", "", Cond::None),
        ],
    );
}

fn step1b(w: &mut Vec<u8>) {
    if w.ends_with(b"ied") {
        let replacement = if w.len() == 4 { "ie" } else { "i" };
        replace_suffix(w, 3, replacement);
        return;
    }
    if w.ends_with(b"eed") {
        if measure(&w[..w.len() - 3]) > 0 {
            w.pop();
        }
        return;
    }
    let removed = [&b"ed"[..], &b"ing"[..]]
        .into_iter()
        .find(|suffix| w.ends_with(suffix) && contains_vowel(&w[..w.len() - suffix.len()]));
    let Some(suffix) = removed else {
        return;
    };
    w.truncate(w.len() - suffix.len());
    if w.ends_with(b"at") || w.ends_with(b"bl") || w.ends_with(b"iz") {
        w.push(b'e');
    } else if ends_double_consonant(w) {
        if !matches!(w.last(), Some(b'l' | b's' | b'z')) {
            w.pop();
        }
    } else if measure(w) == 1 && ends_cvc(w) {
        w.push(b'e');
    }
}

fn step1c(w: &mut Vec<u8>) {
    if w.last() == Some(&b'y') {
        let stem = &w[..w.len() - 1];
        if stem.len() > 1 && ends_with_consonant(stem) {
            replace_suffix(w, 1, "i");
        }
    }
}

fn step2(w: &mut Vec<u8>) {
    if w.ends_with(b"alli") && measure(&w[..w.len() - 4]) > 0 {
        replace_suffix(w, 4, "al");
        step2(w);
        return;
    }
    use Cond::MeasureAbove0 as M;
    apply_rules(
        w,
        &[
            ("ational", "ate", M),
            ("tional", "tion", M),
            ("enci", "ence", M),
            ("anci", "ance", M),
            ("izer", "ize", M),
            ("bli", "ble", M),
            ("alli", "al", M),
            ("entli", "ent", M),
            ("eli", "e", M),
            ("ousli", "ous", M),
            ("ization", "ize", M),
            ("ation", "ate", M),
            ("ator", "ate", M),
            ("alism", "al", M),
            ("iveness", "ive", M),
            ("fulness", "ful", M),
            ("ousness", "ous", M),
            ("aliti", "al", M),
            ("iviti", "ive", M),
            ("biliti", "ble", M),
            ("fulli", "ful", M),
            ("logi", "log", Cond::Logi),
        ],
    );
}

fn step3(w: &mut Vec<u8>) {
    use Cond::MeasureAbove0 as M;
    apply_rules(
        w,
        &[
            ("icate", "ic", M),
            ("ative", "", M),
            ("alize", "al", M),
            ("iciti", "ic", M),
            ("ical", "ic", M),
            ("ful", "", M),
            ("ness", "", M),
        ],
    );
}

fn step4(w: &mut Vec<u8>) {
    use Cond::MeasureAbove1 as M;
    apply_rules(
        w,
        &[
            ("al", "", M),
            ("ance", "", M),
            ("ence", "", M),
            ("er", "", M),
            ("ic", "", M),
            ("able", "", M),
            ("ible", "", M),
            ("ant", "", M),
            ("ement", "", M),
            ("ment", "", M),
            ("ent", "", M),
            ("ion", "", Cond::Ion),
            ("ou", "", M),
            ("ism", "", M),
            ("ate", "", M),
            ("iti", "", M),
            ("ous", "", M),
            ("ive", "", M),
            ("ize", "", M),
        ],
    );
}

fn step5a(w: &mut Vec<u8>) {
    if w.last() == Some(&b'e') {
        let stem = &w[..w.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            w.pop();
        }
    }
}

fn step5b(w: &mut Vec<u8>) {
    if w.ends_with(b"ll") && measure(&w[..w.len() - 1]) > 1 {
        w.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn paper_examples() {
        for (word, expected) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("electrical", "electr"),
            ("adoption", "adopt"),
            ("controlling", "control"),
            ("running", "run"),
        ] {
            assert_eq!(stem(word), expected, "{word}");
        }
    }

    #[test]
    fn nltk_extensions() {
        for (word, expected) in [
            ("dies", "die"),
            ("died", "die"),
            ("spied", "spi"),
            ("flies", "fli"),
            ("enjoy", "enjoy"),
            ("sky", "sky"),
            ("skies", "sky"),
            ("dying", "die"),
            ("news", "news"),
            ("proceed", "proceed"),
            ("innings", "inning"),
            ("geology", "geolog"),
            ("hopefully", "hope"),
            ("radically", "radic"),
        ] {
            assert_eq!(stem(word), expected, "{word}");
        }
    }

    #[test]
    fn short_and_foreign_words_are_left_alone() {
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("a"), "a");
        assert_eq!(stem(""), "");
        assert_eq!(stem("café"), "café");
        assert_eq!(stem("yyyy"), "yyyi");
        assert_eq!(stem("2024"), "2024");
    }

    /// 1,682 words stemmed by NLTK 3.10.4 (`tests/data/summarize/porter_nltk.tsv`, made by
    /// `make_fixtures.py` there).
    #[test]
    fn matches_nltk_on_committed_words() {
        let data = include_str!("../../tests/data/summarize/porter_nltk.tsv");
        let mut checked = 0;
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (word, expected) = line.split_once('\t').unwrap_or((line, ""));
            assert_eq!(stem(word), expected, "{word}");
            checked += 1;
        }
        assert!(checked >= 1500, "only {checked} words");
    }
}
