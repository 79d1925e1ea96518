//! HTML and Markdown documents: translated in place, markup and untouched bytes kept, inline
//! markup moved with the words it belongs to; through the library and the command line.

use proptest::prelude::*;
use pulldown_cmark::{Event, Parser};

use crate::cli::Env;
use crate::common::fixture_dir;
use tolk::config::GenerationConfig;
use tolk::formats::{InputFormat, Markup};
use tolk::output::OutputFormat;
use tolk::pipeline::{DocumentRun, GenerationOverrides, MarkupOutput, Pipeline};
use tolk::translate::{SegmentTranslator, Translation};

/// "Translates" by reversing the words, and says so in its alignment.
struct Reverse;

impl SegmentTranslator for Reverse {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> tolk::Result<Vec<Translation>> {
        Ok(texts
            .iter()
            .map(|t| {
                let words: Vec<&str> = t.split_whitespace().rev().collect();
                let n = words.len();
                Translation {
                    text: words.join(" "),
                    ids: Vec::new(),
                    score: 0.0,
                    source_tokens: n,
                    hypotheses: Vec::new(),
                    pieces: 1,
                    flag: None,
                    alignment: generation
                        .output_alignments
                        .then(|| (0..n).map(|i| Some(n - 1 - i)).collect()),
                }
            })
            .collect())
    }
}

fn copy_model() -> Pipeline {
    Pipeline::builder()
        .model_dir(fixture_dir("marian-tiny-trained"))
        .overrides(GenerationOverrides::default().with_num_beams(1))
        .build()
        .unwrap()
}

fn reversed(pipeline: &Pipeline, format: InputFormat, doc: &str) -> MarkupOutput {
    let markup = Markup::parse(format, doc, "t").unwrap();
    let generation = pipeline.generation().clone();
    let run = DocumentRun {
        translator: &Reverse,
        generation: &generation,
        summary: true,
    };
    pipeline
        .translate_markup_with(&run, &markup, &mut ())
        .unwrap()
}

/// The tags of an HTML text (start and end tags as written), in order.
fn tags(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').map_or(rest.len(), |e| i + e + 1);
        out.push(rest[i..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// Whether the tags of `html` nest properly (void elements aside).
fn well_formed(html: &str) -> bool {
    let mut stack: Vec<String> = Vec::new();
    for t in tags(html) {
        if t.starts_with("<!") || t.ends_with("/>") {
            continue;
        }
        let name: String = t
            .trim_start_matches(['<', '/'])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if ["img", "br", "meta", "hr", "input", "wbr"].contains(&name.as_str()) {
            continue;
        }
        if t.starts_with("</") {
            if stack.pop().as_deref() != Some(name.as_str()) {
                return false;
            }
        } else {
            stack.push(name);
        }
    }
    stack.is_empty()
}

// Sentences the trained fixture copies word for word.
const PAGE: &str = "<!DOCTYPE html>\n<html lang=\"nl\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>Het regent alweer</title>\n<meta name=\"author\" content=\"Jan de Vries\">\n\
<style>p { color: red; }</style>\n</head>\n<body>\n<h1>Het regent alweer</h1>\n\
<p>Ik heb vanochtend <b>koffie</b> gedronken op het <a href=\"/terras?a=1&amp;b=2\">terras</a>. \
We gaan morgen met de fiets naar het <em>strand</em>.</p>\n<!-- niet vertalen -->\n\
<ul>\n  <li>Kun je de <i>deur</i> even dichtdoen?</li>\n</ul>\n<pre>  Ik blijf\n binnen </pre>\n\
<script>document.title = '<p>Goedemorgen</p>';</script>\n</body>\n</html>\n";

#[test]
fn an_html_page_comes_back_with_its_markup_on_the_same_words() {
    let p = copy_model();
    let markup = Markup::parse(InputFormat::Html, PAGE, "page.html").unwrap();
    let out = p
        .translate_markup_for(&p.document_run(), &markup, OutputFormat::Html, &mut ())
        .unwrap();
    // The copy model writes every sentence back as it was: so must the page be, byte for byte,
    // inline elements on the words they were on.
    assert_eq!(out.document, PAGE);
    // The article the pipeline read: the author as metadata, the title and the heading as
    // headlines, the list item with its marker.
    let kinds: Vec<(String, String)> = out
        .output
        .sentences
        .iter()
        .map(|s| {
            (
                serde_json::to_value(&s.kind).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s.source.clone(),
            )
        })
        .collect();
    assert_eq!(kinds[0], ("metadata".into(), "author: Jan de Vries".into()));
    assert_eq!(kinds[1], ("headline".into(), "Het regent alweer".into()));
    assert_eq!(kinds[2], ("headline".into(), "Het regent alweer".into()));
    assert_eq!(kinds.last().unwrap().0, "list_item");
    assert!(out.output.sentences[3].alignment.is_some());
    // Written in its own format, the page has no place for a summary: none is made.
    assert!(out.output.summary.is_none());
    let json = p
        .translate_markup_for(&p.document_run(), &markup, OutputFormat::Json, &mut ())
        .unwrap();
    assert!(json.output.summary.is_some());
}

#[test]
fn inline_markup_moves_with_its_words_and_everything_else_stays() {
    let p = copy_model();
    let doc = "<div class=\"x\"><p>Een <b>twee</b> drie.</p><p><a href=\"/a\" title=\"vier vijf\">zes zeven</a> acht <code>x y</code>.</p>\
<img alt=\"negen tien\" src=\"b.png\"><pre>een twee</pre><p translate=\"no\">een twee</p></div>";
    let out = reversed(&p, InputFormat::Html, doc);
    assert_eq!(
        out.document,
        "<div class=\"x\"><p>drie. <b>twee</b> Een</p><p><code>x y</code>. acht <a href=\"/a\" title=\"vijf vier\">zeven zes</a></p>\
<img alt=\"tien negen\" src=\"b.png\"><pre>een twee</pre><p translate=\"no\">een twee</p></div>"
    );
}

#[test]
fn text_is_escaped_and_entities_are_read() {
    let p = copy_model();
    let out = reversed(
        &p,
        InputFormat::Html,
        "<p>a &lt;b&gt; &amp; &eacute;&#233;</p>",
    );
    assert_eq!(out.document, "<p>éé &amp; &lt;b&gt; a</p>");
    let out = reversed(&p, InputFormat::Markdown, "Een *twee* 1\\*2\n");
    assert_eq!(out.document, "1\\*2 *twee* Een\n");
}

/// The element tree of a Markdown text: its events other than text.
fn md_tree(md: &str) -> Vec<String> {
    let mut out: Vec<String> = Parser::new_ext(md, pulldown_cmark::Options::all())
        .filter(|e| !matches!(e, Event::Text(_) | Event::SoftBreak))
        .map(|e| format!("{e:?}"))
        .collect();
    out.sort();
    out
}

const MARKDOWN: &str = "---\ntitel: Het weer\n---\n\n# Het regent *alweer*\n\n\
Ik heb vanochtend **koffie** gedronken op het [terras](https://example.nl/terras \"Terras\").\n\
We gaan morgen met de fiets naar het strand.\n\n\
- Kun je de `deur` even dichtdoen?\n- Mijn zus woont al tien jaar in Utrecht.\n\n\
> Het regent alweer, dus ik blijf lekker binnen.\n\n\
```sh\ntolk --help\n```\n\n| Kop | Cel |\n|---|---|\n| koffie | terras |\n\n\
![Foto van het strand](strand.jpg)\n";

#[test]
fn a_markdown_document_keeps_its_element_tree() {
    let p = copy_model();
    let markup = Markup::parse(InputFormat::Markdown, MARKDOWN, "a.md").unwrap();
    let out = p
        .translate_markup_for(&p.document_run(), &markup, OutputFormat::Markdown, &mut ())
        .unwrap();
    assert_eq!(
        md_tree(&out.document),
        md_tree(MARKDOWN),
        "{}",
        out.document
    );
    // Code, front matter and link targets as written.
    for kept in [
        "---\ntitel: Het weer\n---",
        "```sh\ntolk --help\n```",
        "(https://example.nl/terras \"Terras\")",
        "(strand.jpg)",
    ] {
        assert!(out.document.contains(kept), "{kept}: {}", out.document);
    }
    // Reversed words: the same tree still, every span on its own words.
    let rev = reversed(&p, InputFormat::Markdown, MARKDOWN);
    assert_eq!(
        md_tree(&rev.document),
        md_tree(MARKDOWN),
        "{}",
        rev.document
    );
    assert!(
        rev.document.contains("# *alweer* regent Het\n"),
        "{}",
        rev.document
    );
}

/// A random HTML body: blocks of words with nested inline elements.
fn html_doc() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "een", "twee", "drie", "vier", "vijf.", "zes,", "Zeven",
    ]);
    let leaf = prop::collection::vec(word, 1..4).prop_map(|w| w.join(" "));
    let inline = leaf.prop_recursive(3, 12, 3, |inner| {
        (
            prop::sample::select(vec!["b", "i", "em", "a", "span"]),
            prop::collection::vec(inner, 1..3),
        )
            .prop_map(|(tag, kids)| format!("<{tag}>{}</{tag}>", kids.join(" ")))
    });
    let block = (
        prop::sample::select(vec!["p", "h2", "li", "td", "blockquote"]),
        prop::collection::vec(inline, 1..4),
    )
        .prop_map(|(tag, parts)| format!("<{tag}>{}</{tag}>", parts.join(" ")));
    prop::collection::vec(block, 1..5).prop_map(|b| b.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_page_keeps_every_tag_well_nested_and_every_word(doc in html_doc()) {
        let p = copy_model();
        let out = reversed(&p, InputFormat::Html, &doc);
        let mut a = tags(&doc);
        let mut b = tags(&out.document);
        a.sort();
        b.sort();
        prop_assert_eq!(a, b, "{}", out.document);
        prop_assert!(well_formed(&out.document), "{}", out.document);
        let words = |s: &str| {
            let mut w: Vec<String> = s
                .split(['<', '>'])
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .flat_map(|(_, t)| t.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect();
            w.sort();
            w
        };
        prop_assert_eq!(words(&doc), words(&out.document));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any text, read as HTML or as Markdown, is translated without a panic, and a document
    /// without translatable text comes back as it was.
    #[test]
    fn any_text_as_html_or_markdown_is_translated_without_panics(
        doc in "[<>/a-z =\"'&;!*_()#`|\\\n\\[\\]-]{0,160}"
    ) {
        let p = copy_model();
        for format in [InputFormat::Html, InputFormat::Markdown] {
            let out = reversed(&p, format, &doc);
            let markup = Markup::parse(format, doc.as_str(), "t").unwrap();
            if markup.texts().next().is_none() {
                prop_assert_eq!(&out.document, &doc);
            }
        }
    }
}

#[test]
fn the_command_line_translates_html_and_markdown_files_and_batches() {
    let env = Env::new();
    let model = fixture_dir("marian-tiny-trained").display().to_string();
    let page = env.write("in/pagina.html", PAGE);
    env.write("in/tekst.md", MARKDOWN);
    env.write("in/bericht.txt", "Het regent alweer.\n");
    let page = page.display().to_string();
    let base = ["--model", model.as_str(), "--num-beams", "1"];
    let run = |args: &[&str]| {
        let mut v = vec!["translate"];
        v.extend_from_slice(args);
        v.extend_from_slice(&base);
        env.run(&v)
    };
    // By extension, written as itself.
    assert_eq!(run(&[&page]).code(0).stdout, PAGE);
    // Or as the article's JSON record.
    let json = run(&[&page, "--format", "json"]).code(0).json();
    assert!(json["summary"].is_object(), "{json}");
    assert_eq!(json["sentences"][1]["type"], "headline");
    // Standard input is text unless told.
    let piped = env.run_with_stdin(
        &[&["translate", "--input-format", "html"], &base[..]].concat(),
        b"<p>Het regent <b>alweer</b>.</p>",
    );
    assert_eq!(piped.code(0).stdout, "<p>Het regent <b>alweer</b>.</p>");
    // HTML output needs HTML input.
    let txt = env.path("in/bericht.txt").display().to_string();
    let e = run(&[&txt, "--format", "html"]);
    assert_ne!(e.code, 0);
    assert!(e.stderr.contains("needs HTML input"), "{}", e.stderr);
    // A batch over all three keeps each format.
    let out = env.path("out").display().to_string();
    let inp = env.path("in").display().to_string();
    let b = env.run(
        &[
            &["batch", &inp, "-o", &out, "--glob", "*.{txt,md,html}"],
            &base[..],
        ]
        .concat(),
    );
    b.code(0);
    assert_eq!(
        std::fs::read_to_string(env.path("out/pagina.html")).unwrap(),
        PAGE
    );
    let md = std::fs::read_to_string(env.path("out/tekst.md")).unwrap();
    assert_eq!(md_tree(&md), md_tree(MARKDOWN));
    assert!(env.path("out/bericht.txt").exists());
}
