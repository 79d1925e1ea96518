//! Tests of the segmenter as a whole: the seed article, reassembly, modes, long sentences, the
//! round-trip invariants on random and real text, and robustness on hostile input.

use proptest::prelude::*;

use super::chars::is_space;
use super::*;

const SEED: &str = include_str!("../../tests/data/segment/nos-belarus-2020-10.nl.txt");
const SEED_SENTENCES: &str =
    include_str!("../../tests/data/segment/nos-belarus-2020-10.sentences.txt");

fn texts(doc: &Document) -> Vec<&str> {
    doc.translatable().map(|s| s.text.as_str()).collect()
}

fn identity(doc: &Document) -> String {
    let own: Vec<&str> = doc.translatable().map(|s| s.text.as_str()).collect();
    doc.reassemble(&own).unwrap()
}

/// Checks the invariants every segmentation must hold, and returns a message for the first
/// violation.
fn check_invariants(text: &str, doc: &Document) -> std::result::Result<(), String> {
    let mut prev_end = 0;
    let mut prev_paragraph = 0;
    for (n, seg) in doc.segments.iter().enumerate() {
        let span = seg.span.clone();
        if span.start < prev_end || span.end > text.len() || span.start >= span.end {
            return Err(format!("segment {n}: bad span {span:?} after {prev_end}"));
        }
        if !text.is_char_boundary(span.start) || !text.is_char_boundary(span.end) {
            return Err(format!("segment {n}: span {span:?} off a char boundary"));
        }
        if seg.text != text[span.clone()] {
            return Err(format!("segment {n}: text differs from input[span]"));
        }
        if seg.text.starts_with(is_space) || seg.text.ends_with(is_space) {
            return Err(format!("segment {n}: not trimmed: {:?}", seg.text));
        }
        let mut gap = &text[prev_end..span.start];
        if let SegmentKind::ListItem { marker } = &seg.kind {
            if !seg.continues {
                let Some(at) = gap.rfind(marker.as_str()) else {
                    return Err(format!("segment {n}: marker {marker:?} not before it"));
                };
                if !gap[..at].chars().all(is_space) {
                    return Err(format!("segment {n}: text lost before marker: {gap:?}"));
                }
                gap = &gap[at + marker.len()..];
            }
        }
        if !gap.chars().all(is_space) {
            return Err(format!("segment {n}: text lost in gap {gap:?}"));
        }
        if seg.paragraph < prev_paragraph {
            return Err(format!("segment {n}: paragraph goes back"));
        }
        if n == 0 && !seg.starts_line {
            return Err("first segment does not start a line".to_string());
        }
        prev_end = span.end;
        prev_paragraph = seg.paragraph;
    }
    if !text[prev_end..].chars().all(is_space) {
        return Err(format!("text lost at the end: {:?}", &text[prev_end..]));
    }
    // Reassembling the segments' own text changes nothing but white space.
    let rebuilt = identity(doc);
    let visible = |s: &str| s.chars().filter(|&c| !is_space(c)).collect::<String>();
    if visible(&rebuilt) != visible(text) {
        return Err("identity reassembly changes the text".to_string());
    }
    Ok(())
}

fn all_segmenters() -> Vec<Segmenter> {
    let mut out = Vec::new();
    for mode in [
        SegmentMode::Sentences,
        SegmentMode::Lines,
        SegmentMode::Paragraphs,
    ] {
        for max in [0, 7, 60, DEFAULT_MAX_CHARS] {
            out.push(Segmenter::new().with_mode(mode).with_max_chars(max));
        }
    }
    for code in ["en", "zh"] {
        let language = Language::new(code).unwrap();
        out.push(Segmenter::new().with_language(language.clone()));
        out.push(Segmenter::new().with_language(language).with_max_chars(7));
    }
    out
}

fn assert_invariants(text: &str) {
    for segmenter in all_segmenters() {
        let doc = segmenter.segment(text);
        if let Err(e) = check_invariants(text, &doc) {
            panic!("{segmenter:?} on {text:?}: {e}");
        }
    }
}

// --- the seed article ---

#[test]
fn seed_sentences() {
    let doc = Segmenter::new().segment(SEED);
    let expected: Vec<&str> = SEED_SENTENCES.lines().collect();
    assert_eq!(texts(&doc), expected);
    assert_eq!(
        doc.segments[0].kind,
        SegmentKind::Metadata {
            key: "date".to_string(),
            value: "2020-10".to_string()
        }
    );
    assert_eq!(doc.segments[0].text, "date 2020-10");
    let headlines: Vec<&str> = doc
        .segments
        .iter()
        .filter(|s| s.kind == SegmentKind::Headline)
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(
        headlines,
        ["Vrijwel gehele Belarussische oppositie opgepakt of gevlucht"]
    );
    let paragraphs: Vec<usize> = doc.segments.iter().map(|s| s.paragraph).collect();
    assert_eq!(
        paragraphs,
        [0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 5, 5, 6, 6, 6, 7, 8, 8]
    );
    check_invariants(SEED, &doc).unwrap();
}

#[test]
fn seed_identity_reassembly() {
    let doc = Segmenter::new().segment(SEED);
    let expected = SEED.trim().replacen("date 2020-10 ", "date 2020-10\n", 1);
    assert_eq!(identity(&doc), expected);
}

#[test]
fn seed_placeholder_reassembly() {
    let doc = Segmenter::new().segment(SEED);
    let placeholders: Vec<String> = (1..=doc.translatable().count())
        .map(|n| format!("S{n}"))
        .collect();
    let out = doc.reassemble(&placeholders).unwrap();
    assert_eq!(
        out,
        "date 2020-10\nS1 S2 S3\n\nS4 S5\n\nS6 S7 S8\n\nS9 S10\n\nS11\n\nS12 S13\n\nS14 S15 S16\n\nS17\n\nS18 S19"
    );
}

#[test]
fn seed_lines_mode() {
    let doc = Segmenter::new()
        .with_mode(SegmentMode::Lines)
        .with_max_chars(0)
        .segment(SEED);
    let lines: Vec<&str> = SEED
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut expected = vec![lines[0].trim_start_matches("date 2020-10 ")];
    expected.extend(&lines[1..]);
    assert_eq!(texts(&doc), expected);
    assert_eq!(
        identity(&doc),
        SEED.trim().replacen("date 2020-10 ", "date 2020-10\n", 1)
    );

    // With the default limit the first line (435 characters) is cut between its sentences.
    let doc = Segmenter::new().with_mode(SegmentMode::Lines).segment(SEED);
    let sentences: Vec<&str> = SEED_SENTENCES.lines().collect();
    let pieces: Vec<(&str, bool)> = doc.segments[1..3]
        .iter()
        .map(|s| (s.text.as_str(), s.continues))
        .collect();
    let first_two = format!("{} {}", sentences[0], sentences[1]);
    assert_eq!(pieces, [(first_two.as_str(), false), (sentences[2], true)]);
    assert_eq!(
        identity(&doc),
        SEED.trim().replacen("date 2020-10 ", "date 2020-10\n", 1)
    );
}

// --- reassembly ---

const LIST_ARTICLE: &str = "Nieuwe regels per maandag\n\nDit moet u weten:\n- De regels gelden vanaf maandag.\n- Ze duren drie weken. Daarna volgt een evaluatie.\n1) eerst de scholen\n2) dan de winkels\n\nDe premier hoopt op begrip. Hij roept iedereen op.";

#[test]
fn list_reassembly() {
    let doc = Segmenter::new().segment(LIST_ARTICLE);
    assert_eq!(identity(&doc), LIST_ARTICLE);
    let placeholders: Vec<String> = (1..=doc.translatable().count())
        .map(|n| format!("T{n}"))
        .collect();
    assert_eq!(
        doc.reassemble(&placeholders).unwrap(),
        "T1\n\nT2\n- T3\n- T4 T5\n1) T6\n2) T7\n\nT8 T9"
    );
}

#[test]
fn reassembly_normalises_layout() {
    let text = "\u{FEFF}  Kop\r\n\r\n\r\nEen zin.   Nog een zin.\r\n\r\n  * punt\r\n";
    let doc = Segmenter::new().segment(text);
    assert_eq!(identity(&doc), "Kop\n\nEen zin. Nog een zin.\n\n* punt");
}

#[test]
fn reassembly_needs_one_translation_per_segment() {
    let doc = Segmenter::new().segment("Een. Twee.");
    assert!(doc.reassemble(&["One."]).is_err());
    assert!(doc.reassemble(&["One.", "Two.", "Three."]).is_err());
    assert_eq!(doc.reassemble(&["One.", "Two."]).unwrap(), "One. Two.");
    let empty = Segmenter::new().segment("  \n ");
    assert!(empty.segments.is_empty());
    assert_eq!(empty.reassemble::<&str>(&[]).unwrap(), "");
}

#[test]
fn metadata_header_block() {
    let text = "titel: Stembussen dicht\nbron: ANP\n\nDe stembussen zijn dicht. Het tellen begint.";
    let doc = Segmenter::new().segment(text);
    assert_eq!(doc.segments.len(), 4);
    assert_eq!(
        texts(&doc),
        ["De stembussen zijn dicht.", "Het tellen begint."]
    );
    assert_eq!(
        doc.reassemble(&["A.", "B."]).unwrap(),
        "titel: Stembussen dicht\nbron: ANP\n\nA. B."
    );
    let without = Segmenter::new().with_metadata(false).segment(text);
    assert!(without.segments.iter().all(|s| s.kind.is_translatable()));
    assert!(without.segments[0].text.starts_with("titel: "));
}

// --- long sentences ---

fn long_sentence() -> String {
    let clause = "de gemeente investeert de komende jaren flink in nieuwe fietspaden";
    let mut s = String::from("Volgens de wethouder");
    for n in 0..12 {
        let joint = ["; ", ", maar ", ", ", " – "][n % 4];
        s.push_str(joint);
        s.push_str(clause);
    }
    s.push('.');
    s
}

#[test]
fn long_sentence_is_cut_within_the_limit() {
    let text = long_sentence();
    let doc = Segmenter::new().with_max_chars(150).segment(&text);
    assert!(doc.segments.len() > 1);
    for (n, seg) in doc.segments.iter().enumerate() {
        assert!(seg.text.chars().count() <= 150, "{}", seg.text);
        assert_eq!(seg.continues, n > 0);
    }
    check_invariants(&text, &doc).unwrap();
    // Pieces come back as one sentence.
    assert_eq!(identity(&doc), text);
    // The preferred boundaries are used: every piece ends at `;`, or before `maar`/a dash.
    for pair in doc.segments.windows(2) {
        let ends = pair[0].text.ends_with(';')
            || pair[1].text.starts_with("maar")
            || pair[1].text.starts_with('–');
        assert!(ends, "cut at {:?} | {:?}", pair[0].text, pair[1].text);
    }
}

#[test]
fn document_split_long_with_a_token_measure() {
    let text = format!("Kop\n\n{} Tweede zin.", long_sentence());
    let mut doc = Segmenter::new().with_max_chars(0).segment(&text);
    assert_eq!(doc.translatable().count(), 3);
    let words = |s: &str| s.split_whitespace().count();
    doc.split_long(20, words);
    assert!(doc.translatable().count() > 4);
    assert!(doc.segments.iter().all(|s| words(&s.text) <= 20));
    check_invariants(&text, &doc).unwrap();
    let placeholders: Vec<String> = doc
        .translatable()
        .map(|s| {
            if s.continues {
                "+".to_string()
            } else {
                "P".to_string()
            }
        })
        .collect();
    let out = doc.reassemble(&placeholders).unwrap();
    let pieces = doc.translatable().count() - 3;
    assert_eq!(out, format!("P\n\nP{} P", " +".repeat(pieces)));
}

/// Checks that `pieces` of `text` are in order, within `limit` characters, and that only white
/// space lies between and around them.
fn check_pieces(
    text: &str,
    pieces: &[std::ops::Range<usize>],
    limit: usize,
) -> std::result::Result<(), String> {
    let mut prev = 0;
    for p in pieces {
        if p.start < prev || p.end <= p.start {
            return Err(format!("piece {p:?} out of order after {prev}"));
        }
        if !text[prev..p.start].chars().all(is_space) {
            return Err(format!("text lost before {p:?}"));
        }
        if text[p.clone()].chars().count() > limit {
            return Err(format!("piece {p:?} over {limit} characters"));
        }
        prev = p.end;
    }
    if !text[prev..].chars().all(is_space) {
        return Err("text lost at the end".to_string());
    }
    Ok(())
}

#[test]
fn split_long_keeps_everything() {
    let text = long_sentence();
    for limit in [1, 10, 33, 100, 1000] {
        let pieces = split_long(&text, limit, |s| s.chars().count());
        check_pieces(&text, &pieces, limit).unwrap();
    }
}

// --- modes ---

#[test]
fn modes() {
    let text = "Kop\nEen zin. Nog een\nzin.\n\n- punt een. punt twee";
    let lines = Segmenter::new().with_mode(SegmentMode::Lines).segment(text);
    assert_eq!(
        texts(&lines),
        ["Kop", "Een zin. Nog een", "zin.", "punt een. punt twee"]
    );
    let paragraphs = Segmenter::new()
        .with_mode(SegmentMode::Paragraphs)
        .segment(text);
    assert_eq!(
        texts(&paragraphs),
        ["Kop", "Een zin. Nog een\nzin.", "punt een. punt twee"]
    );
    assert_eq!(paragraphs.segments[1].flat_text(), "Een zin. Nog een zin.");
    assert_eq!("Lines".parse::<SegmentMode>().unwrap(), SegmentMode::Lines);
    assert_eq!(
        "paragraphs".parse::<SegmentMode>().unwrap(),
        SegmentMode::Paragraphs
    );
    assert!("woorden".parse::<SegmentMode>().is_err());
    assert_eq!(SegmentMode::Sentences.to_string(), "sentences");
}

// --- robustness ---

#[test]
fn hostile_inputs() {
    let long_words = "woord ".repeat(20_000);
    let no_space = "x".repeat(100_000);
    let dots = ". ".repeat(10_000);
    let abbrevs = "dhr. ".repeat(10_000);
    let newlines = "\n".repeat(10_000);
    let cr = "a\rb\r\rc.\r".repeat(1000);
    let inputs: Vec<&str> = vec![
        "",
        " ",
        "\u{FEFF}",
        "\u{FEFF}date 2020-10",
        "\r\n\r\n",
        "\r",
        "\u{0}\u{1}\u{7f}",
        "Een\u{0}zin. Twee\u{1b}[0m zinnen.",
        "שלום עולם. זה מבחן! مرحبا بالعالم. هذا اختبار؟",
        "👍🏽👨‍👩‍👧. 🎉 Feest! 🥳🥳",
        "...",
        "…",
        "- ",
        "1.",
        "(",
        "'s",
        "date ",
        "date 2020-10",
        "url https://x",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z. Z",
        &long_words,
        &no_space,
        &dots,
        &abbrevs,
        &newlines,
        &cr,
    ];
    for text in inputs {
        assert_invariants(text);
    }
}

#[test]
fn twenty_thousand_words_without_punctuation() {
    let text = "woord ".repeat(20_000);
    let doc = Segmenter::new().segment(&text);
    assert!(doc
        .segments
        .iter()
        .all(|s| s.text.chars().count() <= DEFAULT_MAX_CHARS));
    assert!(doc.segments.iter().skip(1).all(|s| s.continues));
    check_invariants(&text, &doc).unwrap();
}

#[test]
fn big_input_is_handled() {
    // A few megabytes of mixed text; the time is linear, so this stays fast even in debug builds.
    let text = format!("{SEED}\n\n").repeat(300);
    let doc = Segmenter::new().segment(&text);
    // Only the first copy's `date 2020-10` is metadata; later ones are part of a sentence.
    assert_eq!(doc.translatable().count(), 300 * 19);
    check_invariants(&text, &doc).unwrap();
}

#[test]
fn line_ends() {
    for sep in ["\n", "\r\n", "\r", "\u{2028}"] {
        let text = ["Kop", "", "Een zin. Twee zinnen.", "", "Slot"].join(sep);
        let doc = Segmenter::new().segment(&text);
        let kinds: Vec<(usize, &str)> = doc
            .segments
            .iter()
            .map(|s| (s.paragraph, s.text.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, "Kop"),
                (1, "Een zin."),
                (1, "Twee zinnen."),
                (2, "Slot")
            ],
            "{sep:?}"
        );
    }
}

// --- the round-trip property ---

const PIECES: &[&str] = &[
    "de",
    "Het",
    "kabinet",
    "J.",
    "P.",
    "bijv.",
    "o.a.",
    "enz.",
    "dhr.",
    "jan.",
    "2020",
    "4,5",
    "14.30",
    "1.000",
    "nos.nl",
    "https://x.nl/a?b=c",
    "'s",
    "iPhone",
    " ",
    " ",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\t",
    ".",
    ".",
    "?",
    "!",
    "...",
    "…",
    ",",
    ";",
    ":",
    "\"",
    "'",
    "„",
    "”",
    "“",
    "‘",
    "’",
    "«",
    "»",
    "(",
    ")",
    "[",
    "]",
    "-",
    "- ",
    "* ",
    "• ",
    "1. ",
    "2) ",
    "a) ",
    "date ",
    "2020-10 ",
    "bron: ",
    "\u{FEFF}",
    "\u{0}",
    "é",
    "👍🏽",
    "שלום",
    "–",
    "\u{A0}",
    "。",
    "！",
    "」",
    "「",
    "と",
    "．",
    "３",
    "天气",
    "Mr.",
    "U.S.",
    "\u{0964}",
];

fn text_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..80).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_on_piecewise_text(text in text_strategy()) {
        for segmenter in all_segmenters() {
            let doc = segmenter.segment(&text);
            prop_assert!(check_invariants(&text, &doc).is_ok(), "{:?}: {:?}", segmenter, check_invariants(&text, &doc));
        }
    }

    #[test]
    fn invariants_on_arbitrary_text(text in any::<String>()) {
        for segmenter in all_segmenters() {
            let doc = segmenter.segment(&text);
            prop_assert!(check_invariants(&text, &doc).is_ok(), "{:?}: {:?}", segmenter, check_invariants(&text, &doc));
        }
    }

    #[test]
    fn split_long_pieces_fit(text in text_strategy(), limit in 1usize..50) {
        let pieces = split_long(&text, limit, |s| s.chars().count());
        let checked = check_pieces(&text, &pieces, limit);
        prop_assert!(checked.is_ok(), "{:?}", checked);
    }
}

#[test]
fn invariants_on_real_text() {
    let mut text = String::from(SEED);
    for case in super::golden::cases() {
        text.push_str("\n\n");
        text.push_str(&case.input);
        assert_invariants(&case.input);
    }
    assert_invariants(&text);
    assert_invariants(LIST_ARTICLE);
}

/// Prints the throughput on large hostile inputs at two sizes, to check that time grows linearly.
#[test]
#[ignore = "timing run: cargo test --release --lib segment::tests::timing -- --ignored --nocapture"]
fn timing() {
    let kinds: [(&str, &str); 6] = [
        ("seed article", SEED),
        ("words, no punctuation", "woord "),
        ("no white space", "x"),
        ("abbreviations", "dhr. o.a. J. "),
        ("short lines", "a\n"),
        ("dots", ". "),
    ];
    for (name, unit) in kinds {
        for mb in [5, 50] {
            let text = unit.repeat(mb * 1_000_000 / unit.len());
            let start = std::time::Instant::now();
            let doc = Segmenter::new().segment(&text);
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{name:>22}: {mb:>2} MB in {secs:6.2} s ({:6.1} MB/s), {} segments",
                mb as f64 / secs,
                doc.segments.len()
            );
        }
    }
}
