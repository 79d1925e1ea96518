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
    /// A title before a name (`dhr.`, `prof.`, `St.`, `prof.dr.`), or the abbreviated first word
    /// of a name (`Kon.`, `Univ.`): the sentence goes on unless the next word cannot be a name
    /// (`Hij`, `Het`).
    Title,
    /// An abbreviation that always introduces more words (`bijv.`, `o.a.`, `nr.`, `ca.`).
    Prefix,
    /// An abbreviation that can end a sentence (`enz.`, `jl.`, `mln.`, months, weekdays, `V.S.`):
    /// a capital after it starts a new sentence, a number or a lowercase word does not.
    Final,
    /// Initials (`J.`, `J.P.`, `W.-A.`, `A.F.Th.`) and other dotted capitalised parts (`Z.K.H.`,
    /// `Hr.Ms.`): a name follows.
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
/// Each line is `class forms: words`. `forms` says which spellings are the abbreviation: none
/// given, the lowercase one only; `caps`, the capitalised one (`Dhr.`, `Nr.`) too; `capsonly`,
/// the capitalised one only. Dotted forms always match capitalised (`O.a.` at a sentence start).
/// Words that are also names or ordinary words when capitalised (`jan`, `max`, `min`) are
/// lowercase only; words that are ordinary words in lowercase (`ver`, `mij`, `nat`) are
/// capitalised only.
///
/// The `title capsonly` line holds the abbreviated first words of proper names, which a
/// capitalised name follows just as one follows a title: institutions (`Kon.`, `Univ.`,
/// `Ned.`), churches (`Herv.`, `Geref.`), firms and foundations (`Fa.`, `Stg.`), saints
/// (`Ste.`) and honorifics (`Exc.`). Royal and noble titles are dotted initials (`Z.K.H.`,
/// `H.M.`) or dotted capitalised parts (`Z.Em.`, `Hr.Ms.`), which [`is_initials`] covers by
/// shape.
const TABLE: &str = "
title caps: gebr dhr hr mevr mw mej mr dr drs ir ing prof ds br zr mgr kard gen lt kol maj kapt sgt adm burg weth gedep staatssecr secr penn vz wnd plv fam wed jhr jkvr bc em st kand dipl lic chr
title capsonly: kon koninkl konink univ rijksuniv ned herv geref kath evang luth nat int internat acad hogesch inst mij maatsch ver stg sticht fa coöp coop centr bisd aartsbisd ste exc
prefix caps: bijv bv b.v ca nr nrs blz pag art afb fig hfst hfdst par bijl tab tel mob resp evt incl excl vs zgn z.g vgl cf cfr ong plm vnl betr jg jrg dl afd prov gem gld fl vlg volg alg r.-k r.k
prefix: max nl dd
prefix caps: a.d.h.v a.g.v a.h.w i.c i.h.a i.h.b i.o.v i.p.v i.s.m i.t.t i.v.m i.c.m i.z m.b.t m.b.v m.i.v m.u.v n.a.v o.a o.b.v o.i o.l.v o.m m.n m.i t.a.v t.b.v t.g.v t.h.v t.k.a t.o.v t.w v.a v.d d.d d.m.v d.w.z m.a.w c.q z.i a.d ipv ivm mbt tov dwz mbv nav
prefix caps: i.o.m m.m.v o.v.v t.n.v t.l.v m.h.o.o v.w.b w.b p.a t.t.v o.g.v o.i.v t.w.v t.e.m b.g.g d.i i.e e.g v.l.n.r vlnr vb nml vlgs tgv tav tbv obv
final caps: jr sr
final: enz etc e.d e.a e.v e.e.a jl j.l a.s ll z.g.a.n z.s.m a.u.b s.v.p t.z.t o.i.d n.v.t n.o.t.k z.o.z p.p c.s m.m v.v a.i i.o q.q v.chr n.chr v.c n.c e.k a.j.b p.m a.m r.i.p v.z.w
final: mln mld mrd milj bln dzd km cm mm dm kg gr mg ml cl dl ltr mtr ha sec min pct proc ct pk mnd wk dgn jr red vert ed vm nm
final: jan feb febr mrt apr jun jul aug sep sept okt nov dec ma di wo do vr za zo zat
";

/// Dotted acronyms that can end a sentence (`naar de V.S.`), matched case-sensitively.
const ACRONYMS: &[&str] = &[
    "V.S", "U.S", "U.S.A", "V.N", "E.U", "V.K", "U.K", "N.V", "B.V", "O.M", "E.K", "W.K", "N.A.V.O",
];

/// Abbreviated first names that occur inside initials (`A.F.Th.`).
const INITIAL_WORDS: &[&str] = &[
    "Th", "Ph", "Ch", "Chr", "Joh", "Jac", "Wm", "IJ", "Ij", "Tj", "Sj",
];

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

/// Which spellings of a [`TABLE`] word are the abbreviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forms {
    /// `bijv.`, not `Bijv.` (no `caps` in the table).
    Lower,
    /// `dhr.` and `Dhr.` (`caps`).
    Both,
    /// `Kon.`, not `kon.` (`capsonly`).
    Capitalised,
}

fn table() -> &'static HashMap<&'static str, (TokenClass, Forms)> {
    static TABLE_MAP: OnceLock<HashMap<&'static str, (TokenClass, Forms)>> = OnceLock::new();
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
            let forms = match head.next() {
                Some("caps") => Forms::Both,
                Some("capsonly") => Forms::Capitalised,
                _ => Forms::Lower,
            };
            for word in words.split_whitespace() {
                map.entry(word).or_insert((class, forms));
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
    if joined_titles(token) {
        return TokenClass::Title;
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
        return table()
            .get(token)
            .filter(|&&(_, forms)| forms != Forms::Capitalised)
            .map(|&(class, _)| class);
    }
    // A capitalised form: only the first letter may be uppercase.
    let mut chars = token.chars();
    let first = chars.next()?;
    if !first.is_uppercase() || chars.any(char::is_uppercase) {
        return None;
    }
    let lower = token.to_lowercase();
    let &(class, forms) = table().get(lower.as_str())?;
    (forms != Forms::Lower || token.contains('.')).then_some(class)
}

/// Titles written together without spaces (`prof.dr.`, `mr.drs.`, `Prof.Dr.ir.`): every part
/// is a known title.
fn joined_titles(token: &str) -> bool {
    token.contains('.')
        && token
            .split('.')
            .all(|part| !part.is_empty() && known(part) == Some(TokenClass::Title))
}

pub(crate) fn is_number(token: &str) -> bool {
    token.starts_with(|c: char| c.is_ascii_digit())
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | ':' | '-' | '/'))
}

/// Whether `token` (without its final full stop) is a run of initials or of other dotted
/// capitalised parts that a name follows: `J`, `J.P`, `W.-A`, `A.F.Th`, `A.H.Ch`, and, with two
/// parts or more, honorifics such as `Hr.Ms` (Hare Majesteits), `Zr.Ms` and `Z.Em`. A part is a
/// capital letter followed by at most two lowercase letters; a single part of more than one
/// letter must be one of the [`INITIAL_WORDS`], since `Ede.` or `Wim.` can end a sentence.
fn is_initials(token: &str) -> bool {
    let mut parts = 0;
    let mut all_known = true;
    for part in token.split('.') {
        let part = part.strip_prefix('-').unwrap_or(part);
        if part.is_empty() {
            continue;
        }
        let mut chars = part.chars();
        let capital = chars.next().is_some_and(char::is_uppercase);
        let tail = chars.clone().count();
        let single_capital = capital && tail == 0;
        let name_part = capital && tail <= 2 && chars.all(char::is_lowercase);
        if !name_part && !INITIAL_WORDS.contains(&part) {
            return false;
        }
        all_known &= single_capital || INITIAL_WORDS.contains(&part);
        parts += 1;
    }
    parts > 1 || (parts == 1 && all_known)
}

pub(crate) fn dotted(token: &str) -> TokenClass {
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

/// Titles that a name follows in many languages written in Latin script (compared in lower
/// case): the only abbreviations the language-independent rules know.
const GENERIC_TITLES: &[&str] = &[
    "dr", "prof", "mr", "mrs", "ms", "mme", "mlle", "mgr", "st", "sr", "sra", "srta", "hr", "dott",
    "dra",
];

/// Classifies the word before a full stop by the language-independent rules: a number, one of
/// a few titles ([`GENERIC_TITLES`]), a single letter (an initial, or an unknown lowercase
/// abbreviation), a dotted abbreviation (`z.B.`, `U.S.A.`: treated as initials, since without a
/// list of the language's abbreviations a name or a noun after one is more likely than a new
/// sentence), or an ordinary word (URLs and domain names included).
pub(crate) fn classify_generic(token: &str) -> TokenClass {
    let token = token.trim_start_matches(crate::segment::chars::is_opener);
    let Some(last) = token.chars().next_back() else {
        return TokenClass::Ordinary;
    };
    if !last.is_alphanumeric() {
        return TokenClass::Ordinary;
    }
    if is_number(token) {
        return TokenClass::Number;
    }
    if token.chars().count() <= 4 && GENERIC_TITLES.contains(&token.to_lowercase().as_str()) {
        return TokenClass::Title;
    }
    let mut chars = token.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return if c.is_lowercase() {
            TokenClass::SingleLower
        } else {
            TokenClass::Initials
        };
    }
    if token.contains('.') && dotted(token) == TokenClass::Dotted {
        return TokenClass::Initials;
    }
    TokenClass::Ordinary
}

/// [`classify`], with what the word before the token says: a dotted acronym (`B.V.`, `O.M.`)
/// right after a title or initials is a run of initials (`mr. B.V. Smit`, `prof. dr. O.M.
/// Visser`), and a title-like abbreviation that names an era after `v.` or `n.` (`n. Chr.`) can
/// end a sentence. `before` is the word before the token as written, with its full stop.
pub(crate) fn classify_in_context(token: &str, before: &str) -> TokenClass {
    let class = classify(token);
    match class {
        TokenClass::Final if ACRONYMS.contains(&token) && is_initials(token) => {
            let name_run = before
                .strip_suffix('.')
                .is_some_and(|b| matches!(classify(b), TokenClass::Title | TokenClass::Initials));
            if name_run {
                TokenClass::Initials
            } else {
                class
            }
        }
        TokenClass::Title if is_era(token, before) => TokenClass::Final,
        _ => class,
    }
}

/// Whether `word` starts a sentence and cannot be part of a name.
pub(crate) fn is_non_name_starter(word: &str) -> bool {
    NON_NAME_STARTERS.contains(&word)
}

/// Whether `token` (a word before a full stop) is an abbreviation that names an era after `v.`
/// or `n.` (`v. Chr.`, `n.Chr.`) and so can end a sentence.
fn is_era(token: &str, before: &str) -> bool {
    let token = token.trim_start_matches(crate::segment::chars::is_opener);
    let (lead, last) = match token.rsplit_once('.') {
        Some((lead, last)) => (lead, last),
        None => (before.trim_end_matches('.'), token),
    };
    matches!(last, "Chr" | "chr")
        && matches!(
            lead.to_lowercase().as_str(),
            "v" | "n" | "voor" | "na" | "vóór"
        )
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
            ("Kon", Title),
            ("kon", Ordinary),
            ("Ver", Title),
            ("ver", Ordinary),
            ("Chr", Title),
            ("prof.dr", Title),
            ("Mr.drs.ir", Title),
            ("prof.xx", Ordinary),
            ("A.H.Ch", Initials),
            ("Hr.Ms", Initials),
            ("Z.Em", Initials),
            ("Ch", Initials),
            ("Ede", Ordinary),
            ("Wim", Ordinary),
            ("B.V", Final),
        ] {
            assert_eq!(classify(token), class, "{token}");
        }
    }

    #[test]
    fn context() {
        for (token, before, class) in [
            ("B.V", "mr.", Initials),
            ("O.M", "J.", Initials),
            ("E.U", "mr.drs.", Initials),
            ("B.V", "een", Final),
            ("B.V", "Jansen", Final),
            ("Chr", "n.", Final),
            ("Chr", "voor", Final),
            ("n.Chr", "47", Dotted),
            ("Chr", "de", Title),
        ] {
            assert_eq!(
                classify_in_context(token, before),
                class,
                "{before} {token}"
            );
        }
    }
}
