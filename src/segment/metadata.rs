//! Leading `key value` metadata fields (`date 2020-10`, `bron: ANP`) at the very start of a
//! document, which are carried through untranslated.
//!
//! Scraped articles often open with such fields, sometimes on the same line as the first sentence
//! (`date 2020-10 De Belarussische president ...`). A field is recognised only at the start of the
//! document (or right after another field), only for known keys, and, when written without a colon,
//! only if the key is lowercase and the value has the shape the key expects, so that prose starting
//! with "Datum van ..." or "Bron van ..." stays prose.

use std::ops::Range;

use super::chars::{after_line_break, is_blank, is_line_break, is_space, is_terminal, skip_while};

/// One recognised field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// From the key's first byte to the value's last.
    pub span: Range<usize>,
    /// The key as written, without a colon.
    pub key: String,
    /// The value as written.
    pub value: String,
}

/// The shape of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// A date or time: `2020-10`, `12 oktober 2020`, `2020-10-12T14:30:00Z`.
    Date,
    /// One URL or domain name.
    Url,
    /// One identifier containing a digit.
    Id,
    /// A person's name: capitalised words and name particles.
    Name,
    /// Free text: the rest of the line, or one word when a sentence follows on the same line.
    Text,
}

fn key_kind(key: &str) -> Option<ValueKind> {
    Some(match key {
        "date" | "datum" | "published" | "publicatiedatum" | "gepubliceerd" | "updated"
        | "bijgewerkt" | "time" | "tijd" | "datetime" | "pubdate" | "created" | "modified" => {
            ValueKind::Date
        }
        "url" | "link" | "uri" | "canonical" | "permalink" => ValueKind::Url,
        "id" | "article_id" | "article-id" | "doc_id" | "docid" => ValueKind::Id,
        "auteur" | "author" | "auteurs" | "authors" | "byline" => ValueKind::Name,
        "titel" | "title" | "kop" | "headline" | "bron" | "source" | "tags" | "tag"
        | "categorie" | "category" | "rubriek" | "section" | "sectie" | "lang" | "language"
        | "taal" | "locatie" | "location" | "plaats" | "keywords" | "trefwoorden" | "onderwerp"
        | "subject" | "publisher" | "uitgever" => ValueKind::Text,
        _ => return None,
    })
}

const MONTHS: &[&str] = &[
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
    "january",
    "february",
    "march",
    "may",
    "june",
    "july",
    "august",
    "october",
    "jan",
    "feb",
    "febr",
    "mrt",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "okt",
    "oct",
    "nov",
    "dec",
];

const WEEKDAYS: &[&str] = &[
    "maandag",
    "dinsdag",
    "woensdag",
    "donderdag",
    "vrijdag",
    "zaterdag",
    "zondag",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "ma",
    "di",
    "wo",
    "do",
    "vr",
    "za",
    "zo",
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
];

/// Name particles that may stand lowercase inside a name (`Jan de Vries`).
const PARTICLES: &[&str] = &[
    "van", "de", "der", "den", "het", "'t", "ter", "ten", "te", "op", "in", "la", "le", "du", "di",
    "da", "von", "zu", "el",
];

/// Words that start a sentence after a byline (`auteur Jan de Vries De president ...`).
const SENTENCE_STARTERS: &[&str] = &[
    "De", "Het", "Een", "In", "Op", "Bij", "Na", "Volgens", "Er", "Dat", "Dit", "Deze", "Die",
    "Hij", "Zij", "Ze", "We", "Wij", "Ik", "Met", "Voor", "Om", "Tijdens", "Sinds", "Ook", "Nu",
    "Toen", "Zo", "Wie", "Wat", "Waar", "Hoe", "Als",
];

/// The most fields read; a document is not all metadata.
const MAX_FIELDS: usize = 32;

/// Reads the metadata fields at the start of `text` (from byte `start`, after any byte-order mark).
///
/// Returns the fields and the byte where the rest of the document begins: right after the last
/// field when a sentence follows on its line, or at the start of the next line otherwise.
pub(crate) fn leading_fields(text: &str, start: usize) -> (Vec<Field>, usize) {
    let mut fields = Vec::new();
    let mut resume = start;
    // Blank lines may precede the first field, never separate two fields.
    let mut pos = skip_while(text, start, text.len(), is_space);
    while fields.len() < MAX_FIELDS {
        let Some(field) = parse_field(text, pos) else {
            break;
        };
        let end = field.span.end;
        fields.push(field);
        let line_end = skip_while(text, end, text.len(), |c| !is_line_break(c));
        if text
            .get(end..line_end)
            .is_some_and(|rest| rest.chars().all(is_space))
        {
            resume = after_line_break(text, line_end);
        } else {
            resume = end;
        }
        pos = skip_while(text, resume, text.len(), is_blank);
    }
    (fields, resume)
}

/// Parses one field starting exactly at `pos`.
fn parse_field(text: &str, pos: usize) -> Option<Field> {
    let line_end = skip_while(text, pos, text.len(), |c| !is_line_break(c));
    let line = text.get(pos..line_end)?;
    let key_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(line.len());
    if key_len == 0 || key_len > 24 {
        return None;
    }
    let key = &line[..key_len];
    let lower = key.to_ascii_lowercase();
    let kind = key_kind(&lower)?;
    let after_key = &line[key_len..];
    let colon = after_key.starts_with([':', '=']);
    let after_sep = if colon { &after_key[1..] } else { after_key };
    let gap = after_sep.len() - after_sep.trim_start_matches(is_blank).len();
    if gap == 0 && !colon {
        return None;
    }
    let value_start = pos + key_len + usize::from(colon) + gap;
    let rest = text.get(value_start..line_end)?.trim_end_matches(is_space);
    if rest.is_empty() {
        return None;
    }
    let whole = Some(rest.len());
    let plain = !colon && key == lower;
    let value_len = match kind {
        ValueKind::Date => date_len(rest).or(if colon { whole } else { None }),
        ValueKind::Url => url_len(rest).or(if colon { whole } else { None }),
        ValueKind::Id if colon => whole,
        ValueKind::Id if plain => first_token(rest)
            .filter(|t| t.contains(|c: char| c.is_ascii_digit()))
            .map(str::len),
        ValueKind::Name | ValueKind::Text if colon || (plain && !has_sentence(rest)) => whole,
        ValueKind::Name if plain => name_len(rest),
        ValueKind::Text if plain => first_token(rest).map(str::len),
        _ => None,
    }?;
    let value_end = value_start + value_len;
    Some(Field {
        span: pos..value_end,
        key: key.to_string(),
        value: text.get(value_start..value_end)?.to_string(),
    })
}

/// Length of the date (and time) at the start of `rest`.
fn date_len(rest: &str) -> Option<usize> {
    let tokens: Vec<(usize, &str)> = tokens(rest).take(8).collect();
    let mut i = 0;
    let mut end = 0;
    let mut has_digit = false;
    let is_month = |t: &str| MONTHS.contains(&t.trim_end_matches('.').to_lowercase().as_str());
    let is_year = |t: &str| t.len() == 4 && t.chars().all(|c| c.is_ascii_digit());
    let is_day = |t: &str| (1..=2).contains(&t.len()) && t.chars().all(|c| c.is_ascii_digit());
    while let Some(&(_, raw)) = tokens.get(i) {
        let token = raw.trim_end_matches(',');
        let take = |n: usize| -> usize {
            tokens
                .get(i + n - 1)
                .map_or(0, |&(o, t)| o + t.trim_end_matches(',').len())
        };
        let count = if WEEKDAYS.contains(&token.to_lowercase().as_str()) {
            1
        } else if is_numeric_date(token) {
            has_digit = true;
            1
        } else if is_day(token) && tokens.get(i + 1).is_some_and(|&(_, t)| is_month(t)) {
            has_digit = true;
            if tokens
                .get(i + 2)
                .is_some_and(|&(_, t)| is_year(t.trim_end_matches(',')))
            {
                3
            } else {
                2
            }
        } else if is_month(token)
            && tokens
                .get(i + 1)
                .is_some_and(|&(_, t)| is_year(t.trim_end_matches(',')))
        {
            has_digit = true;
            2
        } else {
            break;
        };
        end = take(count);
        i += count;
    }
    (has_digit && end > 0).then_some(end)
}

/// A numeric date or time token: `2020-10`, `12-10-2020`, `2020`, `14:30`, `2020-10-12T14:30Z`.
fn is_numeric_date(token: &str) -> bool {
    let digits = token.chars().filter(char::is_ascii_digit).count();
    let separators = token
        .chars()
        .filter(|c| matches!(c, '-' | '/' | '.' | ':' | 'T' | '+' | 'Z'))
        .count();
    token.starts_with(|c: char| c.is_ascii_digit())
        && digits + separators == token.chars().count()
        && (separators > 0 || digits == 4)
        && !token.ends_with(['-', '/', '.', ':'])
}

/// Length of the URL or domain name at the start of `rest`.
fn url_len(rest: &str) -> Option<usize> {
    let token = first_token(rest)?.trim_end_matches([',', ';', '.']);
    let lower = token.to_ascii_lowercase();
    let domain_like = token.contains('.')
        && token.rsplit('.').next().is_some_and(|tld| {
            (2..=6).contains(&tld.len()) && tld.chars().all(|c| c.is_ascii_alphabetic())
        });
    (lower.contains("://") || lower.starts_with("www.") || domain_like).then_some(token.len())
}

/// Length of the name at the start of `rest`: capitalised words and particles, up to a word that
/// starts a sentence.
fn name_len(rest: &str) -> Option<usize> {
    let mut end = None;
    let mut last_was_particle = false;
    for (words, (offset, token)) in tokens(rest).take(8).enumerate() {
        let capitalised = token.starts_with(char::is_uppercase)
            && token
                .chars()
                .all(|c| c.is_alphabetic() || c == '-' || c == '\'');
        let particle = PARTICLES.contains(&token);
        if !(capitalised || particle) {
            break;
        }
        if words >= 2 && !last_was_particle && SENTENCE_STARTERS.contains(&token) {
            break;
        }
        last_was_particle = particle;
        if !particle {
            end = Some(offset + token.len());
        }
    }
    end.or_else(|| first_token(rest).map(str::len))
}

/// Whether `rest` holds a sentence: sentence punctuation at its end or before white space.
fn has_sentence(rest: &str) -> bool {
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if is_terminal(c) && chars.peek().is_none_or(|&n| is_space(n)) {
            return true;
        }
    }
    false
}

/// The white-space separated tokens of `s` with their byte offsets.
fn tokens(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split(is_blank)
        .scan(0usize, |offset, token| {
            let at = *offset;
            *offset += token.len() + 1;
            Some((at, token))
        })
        .filter(|(_, t)| !t.is_empty())
}

fn first_token(s: &str) -> Option<&str> {
    s.split(is_blank).next().filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> (Vec<(String, String)>, &str) {
        let (fields, rest) = leading_fields(text, 0);
        (
            fields.into_iter().map(|f| (f.key, f.value)).collect(),
            &text[rest..],
        )
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn seed_style_date() {
        let (f, rest) = fields(" date 2020-10 De president sprak. Het duurde lang.");
        assert_eq!(f, [kv("date", "2020-10")]);
        assert_eq!(rest, " De president sprak. Het duurde lang.");
    }

    #[test]
    fn dates() {
        assert_eq!(date_len("12 oktober 2020 De Kamer"), Some(15));
        assert_eq!(date_len("maandag 12 okt. 2020, 14:30 De"), Some(27));
        assert_eq!(date_len("2020-10-12T14:30:00Z"), Some(20));
        assert_eq!(date_len("De Kamer"), None);
        assert_eq!(date_len("12 mensen"), None);
    }

    #[test]
    fn header_lines() {
        let (f, rest) = fields("titel: Kop\r\nauteur: Jan de Vries\n\nTekst.");
        assert_eq!(f, [kv("titel", "Kop"), kv("auteur", "Jan de Vries")]);
        assert_eq!(rest, "\nTekst.");
    }

    #[test]
    fn byline_before_prose() {
        let (f, rest) = fields("auteur Jan de Vries De president sprak.");
        assert_eq!(f, [kv("auteur", "Jan de Vries")]);
        assert_eq!(rest, " De president sprak.");
    }

    #[test]
    fn prose_is_not_metadata() {
        for text in [
            "Datum van de verkiezingen is onbekend.",
            "Bron van onrust is de wet.",
            "date",
            "date:",
            "datum morgen is onbekend.",
            "id kaart",
            "",
        ] {
            assert_eq!(fields(text).0, [], "{text}");
        }
    }
}
