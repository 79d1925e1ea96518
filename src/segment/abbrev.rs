//! Dutch abbreviations and the classification of the word before a full stop.
//!
//! A full stop after an abbreviation may or may not end the sentence. Each known abbreviation has a
//! class that says how the word after it decides: titles and prefixes are followed by more of the
//! same sentence, final abbreviations (`enz.`, `jl.`, `mln.`) end it when a capital follows.
//! Unknown words are classified by shape (initials, numbers, dotted abbreviations, domain names).

use std::collections::HashMap;
use std::sync::OnceLock;

/// What the word before a full stop is, as far as sentence ends are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenClass {
    /// A title before a name (`dhr.`, `prof.`, `St.`): the sentence goes on unless the next word
    /// cannot be a name (`Hij`, `Het`).
    Title,
    /// An abbreviation that always introduces more words (`bijv.`, `o.a.`, `nr.`, `ca.`).
    Prefix,
    /// An abbreviation that can end a sentence (`enz.`, `jl.`, `mln.`, months, weekdays, `V.S.`):
    /// a capital after it starts a new sentence, a number or a lowercase word does not.
    Final,
    /// Initials (`J.`, `J.P.`, `W.-A.`, `A.F.Th.`): a name follows.
    Initials,
    /// A single lowercase letter (`h.`, `v.`): an unknown abbreviation.
    SingleLower,
    /// An unknown dotted abbreviation (`z.s.m.`, `P.v.d.A.`).
    Dotted,
    /// A number (`2020`, `19.00`, `1.843`).
    Number,
    /// Any other word, including URLs and domain names.
    Ordinary,
}

/// Known abbreviations, without their final full stop, in lowercase.
///
/// Each line is `class caps: words`; `caps` says whether a capitalised form (`Dhr.`, `Nr.`) is the
/// same abbreviation. Dotted forms always match capitalised (`O.a.` at a sentence start). Words
/// that are also names or ordinary words when capitalised (`jan`, `max`, `min`) are lowercase only.
const TABLE: &str = "
title caps: gebr dhr hr mevr mw mej mr dr drs ir ing prof ds br zr mgr kard gen lt kol maj kapt sgt adm burg weth gedep staatssecr secr penn vz wnd plv fam wed jhr jkvr bc em st kand dipl
prefix caps: bijv bv b.v ca nr nrs blz pag art afb fig hfst hfdst par bijl tab tel mob resp evt incl excl vs zgn z.g vgl cf cfr ong plm vnl betr jg jrg dl afd prov gem gld fl vlg volg alg r.-k r.k
prefix: max nl dd
prefix caps: a.d.h.v a.g.v a.h.w i.c i.h.a i.h.b i.o.v i.p.v i.s.m i.t.t i.v.m i.c.m i.z m.b.t m.b.v m.i.v m.u.v n.a.v o.a o.b.v o.i o.l.v o.m m.n m.i t.a.v t.b.v t.g.v t.h.v t.k.a t.o.v t.w v.a v.d d.d d.m.v d.w.z m.a.w c.q z.i a.d ipv ivm mbt tov dwz mbv nav
prefix caps: i.o.m m.m.v o.v.v t.n.v t.l.v m.h.o.o v.w.b w.b p.a t.t.v o.g.v o.i.v t.w.v t.e.m b.g.g d.i i.e e.g v.l.n.r vlnr vb nml vlgs tgv tav tbv obv
final caps: jr sr chr
final: enz etc e.d e.a e.v e.e.a jl j.l a.s ll z.g.a.n z.s.m a.u.b s.v.p t.z.t o.i.d n.v.t n.o.t.k z.o.z p.p c.s m.m v.v a.i i.o q.q v.chr n.chr v.c n.c e.k a.j.b p.m a.m r.i.p v.z.w
final: mln mld mrd milj bln dzd km cm mm dm kg gr mg ml cl dl ltr mtr ha sec min pct proc ct pk mnd wk dgn jr red vert ed vm nm
final: jan feb febr mrt apr jun jul aug sep sept okt nov dec ma di wo do vr za zo zat
";

/// Dotted acronyms that can end a sentence (`naar de V.S.`), matched case-sensitively.
const ACRONYMS: &[&str] = &[
    "V.S", "U.S", "U.S.A", "V.N", "E.U", "V.K", "U.K", "N.V", "B.V", "O.M", "E.K", "W.K", "N.A.V.O",
];

/// Abbreviated first names that occur inside initials (`A.F.Th.`).
const INITIAL_WORDS: &[&str] = &["Th", "Ph", "Chr", "Joh", "Jac", "Wm", "IJ", "Ij", "Tj"];

/// Last parts that make a dotted word a domain name (`nos.nl`), not an abbreviation.
const TLDS: &[&str] = &[
    "nl",
    "be",
    "com",
    "org",
    "net",
    "eu",
    "de",
    "uk",
    "fr",
    "io",
    "info",
    "gov",
    "edu",
    "co",
    "nu",
    "tv",
    "fm",
    "ai",
    "app",
    "dev",
    "me",
    "ly",
    "ru",
    "cn",
    "jp",
    "es",
    "it",
    "ch",
    "at",
    "se",
    "dk",
    "pl",
    "us",
    "ca",
    "au",
    "frl",
    "amsterdam",
    "brussels",
    "vlaanderen",
    "online",
    "site",
    "news",
    "shop",
];

/// Capitalised words that start sentences and are never (part of) a name, so a title or initial
/// before them ends the sentence (`plan B. Het ...`, `prof. Hij ...`). Name particles such as
/// `De`, `Van`, `Op`, `In` are deliberately absent (`B. De Wever`, `K. Op de Beeck`).
const NON_NAME_STARTERS: &[&str] = &[
    "Het",
    "Een",
    "Hij",
    "Zij",
    "Ze",
    "Wij",
    "We",
    "Ik",
    "Jij",
    "Je",
    "Jullie",
    "U",
    "Men",
    "Dat",
    "Dit",
    "Deze",
    "Die",
    "Er",
    "Daar",
    "Hier",
    "Maar",
    "En",
    "Ook",
    "Toen",
    "Daarna",
    "Daarom",
    "Daarnaast",
    "Daardoor",
    "Daarmee",
    "Volgens",
    "Dan",
    "Nu",
    "Wel",
    "Niet",
    "Nog",
    "Als",
    "Omdat",
    "Want",
    "Dus",
    "Bovendien",
    "Verder",
    "Zo",
    "Zoals",
    "Wat",
    "Wie",
    "Waar",
    "Hoe",
    "Waarom",
    "Welke",
    "Sinds",
    "Tijdens",
    "Ondanks",
    "Inmiddels",
    "Intussen",
    "Eerder",
    "Later",
    "Toch",
    "Ja",
    "Nee",
    "Geen",
    "Alle",
    "Veel",
    "Iedereen",
    "Niemand",
    "Sommige",
    "Zijn",
    "Haar",
    "Hun",
    "Mijn",
    "Onze",
    "Ons",
    "Vooral",
    "Zelfs",
    "Ongeveer",
    "Pas",
    "Tot",
    "Na",
    "Met",
];

fn table() -> &'static HashMap<&'static str, (TokenClass, bool)> {
    static TABLE_MAP: OnceLock<HashMap<&'static str, (TokenClass, bool)>> = OnceLock::new();
    TABLE_MAP.get_or_init(|| {
        let mut map = HashMap::new();
        for line in TABLE.lines() {
            let Some((head, words)) = line.split_once(':') else {
                continue;
            };
            let mut head = head.split_whitespace();
            let class = match head.next() {
                Some("title") => TokenClass::Title,
                Some("prefix") => TokenClass::Prefix,
                _ => TokenClass::Final,
            };
            let caps = head.next() == Some("caps");
            for word in words.split_whitespace() {
                map.entry(word).or_insert((class, caps));
            }
        }
        map
    })
}

/// Classifies the word that precedes a full stop (without the stop itself).
pub(crate) fn classify(token: &str) -> TokenClass {
    let token = token.trim_start_matches(crate::segment::chars::is_opener);
    let Some(last) = token.chars().next_back() else {
        return TokenClass::Ordinary;
    };
    if !last.is_alphanumeric() {
        return TokenClass::Ordinary;
    }
    if let Some(class) = known(token) {
        return class;
    }
    if ACRONYMS.contains(&token) {
        return TokenClass::Final;
    }
    if is_number(token) {
        return TokenClass::Number;
    }
    if is_initials(token) {
        return TokenClass::Initials;
    }
    let mut chars = token.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_lowercase() {
            return TokenClass::SingleLower;
        }
    }
    if token.contains('.') {
        return dotted(token);
    }
    TokenClass::Ordinary
}

fn known(token: &str) -> Option<TokenClass> {
    if token.len() > 16 {
        return None;
    }
    if !token.chars().any(char::is_uppercase) {
        return table().get(token).map(|&(class, _)| class);
    }
    // A capitalised form: only the first letter may be uppercase.
    let mut chars = token.chars();
    let first = chars.next()?;
    if !first.is_uppercase() || chars.any(char::is_uppercase) {
        return None;
    }
    let lower = token.to_lowercase();
    let &(class, caps) = table().get(lower.as_str())?;
    (caps || token.contains('.')).then_some(class)
}

fn is_number(token: &str) -> bool {
    token.starts_with(|c: char| c.is_ascii_digit())
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | ':' | '-' | '/'))
}

fn is_initials(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        let part = part.strip_prefix('-').unwrap_or(part);
        if part.is_empty() {
            continue;
        }
        let mut chars = part.chars();
        let single_capital =
            matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
        if !single_capital && !INITIAL_WORDS.contains(&part) {
            return false;
        }
        parts += 1;
    }
    parts > 0
}

fn dotted(token: &str) -> TokenClass {
    let parts: Vec<&str> = token.split('.').collect();
    let last = parts.last().copied().unwrap_or_default().to_lowercase();
    let long_part = parts.iter().any(|p| p.chars().count() >= 2);
    if long_part && TLDS.contains(&last.as_str()) {
        return TokenClass::Ordinary;
    }
    let short_letters = parts.iter().all(|p| {
        let n = p.chars().count();
        (1..=3).contains(&n) && p.chars().all(char::is_alphabetic)
    });
    if short_letters {
        TokenClass::Dotted
    } else {
        TokenClass::Ordinary
    }
}

/// Whether `word` starts a sentence and cannot be part of a name.
pub(crate) fn is_non_name_starter(word: &str) -> bool {
    NON_NAME_STARTERS.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::TokenClass::*;
    use super::*;

    #[test]
    fn classes() {
        for (token, class) in [
            ("bijv", Prefix),
            ("Bijv", Prefix),
            ("o.a", Prefix),
            ("O.a", Prefix),
            ("dhr", Title),
            ("Dhr", Title),
            ("enz", Final),
            ("jan", Final),
            ("Jan", Ordinary),
            ("max", Prefix),
            ("Max", Ordinary),
            ("V.S", Final),
            ("J", Initials),
            ("J.P", Initials),
            ("W.-A", Initials),
            ("A.F.Th", Initials),
            ("h", SingleLower),
            ("z.s.x", Dotted),
            ("nos.nl", Ordinary),
            ("https://nos.nl/a", Ordinary),
            ("2020", Number),
            ("19.00", Number),
            ("(NOS)", Ordinary),
            ("(bijv", Prefix),
            ("gesprek", Ordinary),
        ] {
            assert_eq!(classify(token), class, "{token}");
        }
    }
}
