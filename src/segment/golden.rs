//! Runs the hand-written golden cases in `tests/data/segment/golden.txt` (Dutch; format described
//! at the top of that file) and `tests/data/segment/languages.txt` (other languages, `@lang=CODE`)
//! and reports every failing case with a diff, plus the exact-match rate.

use super::{Document, Language, SegmentKind, SegmentMode, Segmenter};

const GOLDEN: &str = include_str!("../../tests/data/segment/golden.txt");
const LANGUAGES: &str = include_str!("../../tests/data/segment/languages.txt");

/// One golden case.
pub(super) struct Case {
    pub name: String,
    pub input: String,
    pub expected: Vec<String>,
    pub segmenter: Segmenter,
}

/// Parses the Dutch golden file.
pub(super) fn cases() -> Vec<Case> {
    cases_in(GOLDEN)
}

/// Parses a golden file.
fn cases_in(file: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = file
        .lines()
        .skip_while(|l| !l.starts_with("=== "))
        .peekable();
    while let Some(header) = lines.next() {
        let Some(header) = header.strip_prefix("=== ") else {
            continue;
        };
        let mut segmenter = Segmenter::new();
        let mut name = Vec::new();
        for word in header.split_whitespace() {
            match word {
                "@lines" => segmenter = segmenter.with_mode(SegmentMode::Lines),
                "@paragraphs" => segmenter = segmenter.with_mode(SegmentMode::Paragraphs),
                w if w.starts_with("@lang=") => {
                    let language = Language::new(&w["@lang=".len()..]).unwrap_or_default();
                    segmenter = segmenter.with_language(language);
                }
                w if w.starts_with("@max=") => {
                    let max = w["@max=".len()..].parse().unwrap_or(0);
                    segmenter = segmenter.with_max_chars(max);
                }
                w => name.push(w),
            }
        }
        let mut input = Vec::new();
        for line in lines.by_ref() {
            if line == "---" {
                break;
            }
            input.push(line);
        }
        let mut expected = Vec::new();
        while let Some(line) = lines.next_if(|l| !l.starts_with("=== ")) {
            expected.push(line.to_string());
        }
        while expected.last().is_some_and(|l| l.is_empty()) {
            expected.pop();
        }
        cases.push(Case {
            name: name.join(" "),
            input: input.join("\n"),
            expected,
            segmenter,
        });
    }
    cases
}

/// Renders a document in the golden file's notation.
pub(super) fn render(doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    let mut paragraph = None;
    for segment in &doc.segments {
        if paragraph.is_some_and(|p| p != segment.paragraph) {
            out.push(String::new());
        }
        paragraph = Some(segment.paragraph);
        let text = segment.text.replace('\r', "\\r").replace('\n', "\\n");
        let line = match &segment.kind {
            _ if segment.continues => format!("[+] {text}"),
            SegmentKind::Sentence => text,
            SegmentKind::Headline => format!("[headline] {text}"),
            SegmentKind::ListItem { marker } => format!("[item {marker}] {text}"),
            SegmentKind::Metadata { key, value } => format!("[meta {key}] {value}"),
        };
        out.push(line);
    }
    out
}

/// A line diff (longest common subsequence): `-` expected only, `+` produced only.
pub(super) fn diff(expected: &[String], got: &[String]) -> String {
    let (n, m) = (expected.len(), got.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == got[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && expected[i] == got[j] {
            out += &format!("    {}\n", expected[i]);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out += &format!("  + {}\n", got[j]);
            j += 1;
        } else {
            out += &format!("  - {}\n", expected[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn golden_cases() {
    let cases = cases();
    assert!(cases.len() >= 150, "only {} golden cases", cases.len());
    run(&cases, "golden");
}

#[test]
fn other_language_cases() {
    let cases = cases_in(LANGUAGES);
    assert!(cases.len() >= 20, "only {} language cases", cases.len());
    assert!(cases.iter().all(|c| c.segmenter.language.is_some()));
    run(&cases, "languages");
}

/// Segments every case and fails with the diffs of those that come out wrong.
fn run(cases: &[Case], what: &str) {
    let mut failures = Vec::new();
    for case in cases {
        let got = render(&case.segmenter.segment(&case.input));
        if got != case.expected {
            failures.push(format!("=== {}\n{}", case.name, diff(&case.expected, &got)));
        }
    }
    let passed = cases.len() - failures.len();
    let rate = 100.0 * passed as f64 / cases.len() as f64;
    println!(
        "{what}: {passed} of {} cases exactly right ({rate:.1} %)",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} {what} cases fail ({rate:.1} % exactly right):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_file_parses() {
    for cases in [cases(), cases_in(LANGUAGES)] {
        assert!(cases
            .iter()
            .all(|c| !c.input.is_empty() && !c.expected.is_empty()));
        let names: std::collections::HashSet<&str> =
            cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), cases.len(), "duplicate case names");
    }
}
