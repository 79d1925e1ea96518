//! Office files, EPUB and subtitles: translated in place through the one document path, every
//! entry and byte the text does not touch kept, formatting moved with the words; and the
//! limits that keep a stranger's zip from hurting the machine.

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::cli::Env;
use crate::common::fixture_dir;
use crate::formats::{copy_model, made_up, Reverse};
use tolk::config::GenerationConfig;
use tolk::translate::{SegmentTranslator, Translation};

/// "Translates" by swapping each pair of neighbouring words (a word order that changes, but
/// only nearby, as a real translation's does), and says so in its alignment.
struct Swap;

impl SegmentTranslator for Swap {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> tolk::Result<Vec<Translation>> {
        Ok(texts
            .iter()
            .map(|t| {
                let words: Vec<&str> = t.split_whitespace().collect();
                let order: Vec<usize> = (0..words.len())
                    .map(|i| {
                        if i % 2 == 0 {
                            (i + 1).min(words.len() - 1)
                        } else {
                            i - 1
                        }
                    })
                    .collect();
                let text = order
                    .iter()
                    .map(|&k| words[k])
                    .collect::<Vec<_>>()
                    .join(" ");
                made_up(t, text, order.into_iter().map(Some).collect(), generation)
            })
            .collect())
    }
}
use tolk::formats::{InputFormat, Markup, PackageLimits};
use tolk::pipeline::{DocumentRun, MarkupOutput, Pipeline};

const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;

/// A zip of `(name, bytes, stored)` entries.
pub(crate) fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes, stored) in entries {
        let method = if *stored {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        z.start_file(
            *name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// The entries of a zip: (name, compression, bytes), in order.
fn entries(zip: &[u8]) -> Vec<(String, CompressionMethod, Vec<u8>)> {
    let mut a = ZipArchive::new(Cursor::new(zip)).unwrap();
    (0..a.len())
        .map(|i| {
            let mut f = a.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().unwrap().to_string(), f.compression(), b)
        })
        .collect()
}

pub(crate) fn part(zip: &[u8], name: &str) -> String {
    let e = entries(zip);
    let (_, _, b) = e.iter().find(|(n, _, _)| n == name).unwrap();
    String::from_utf8(b.clone()).unwrap()
}

/// Whether the tags of an XML text nest (empty elements, declarations aside).
fn well_formed(xml: &str) -> bool {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').map_or(rest.len(), |e| i + e + 1);
        let tag = &rest[i..end];
        rest = &rest[end..];
        if tag.starts_with("<?") || tag.starts_with("<!") || tag.ends_with("/>") {
            continue;
        }
        let name: String = tag
            .trim_start_matches(['<', '/'])
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>')
            .collect();
        if tag.starts_with("</") {
            if stack.pop().as_deref() != Some(name.as_str()) {
                return false;
            }
        } else {
            stack.push(name);
        }
    }
    stack.is_empty()
}

/// The text of the elements named `text` (`w:t`, `a:t`), joined.
pub(crate) fn texts(xml: &str, text: &str) -> String {
    let open = format!("<{text}");
    let close = format!("</{text}>");
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        if !after.starts_with(['>', ' ']) {
            rest = after;
            continue;
        }
        let start = after.find('>').unwrap() + 1;
        let end = after.find(&close).unwrap();
        out.push_str(&after[start..end]);
        rest = &after[end..];
    }
    out
}

fn reversed(pipeline: &Pipeline, markup: &Markup) -> MarkupOutput {
    with(&Reverse, pipeline, markup)
}

fn with(translator: &dyn SegmentTranslator, pipeline: &Pipeline, markup: &Markup) -> MarkupOutput {
    let generation = pipeline.generation().clone();
    let run = DocumentRun {
        translator,
        generation: &generation,
        summary: true,
    };
    pipeline
        .translate_markup_with(&run, markup, &mut ())
        .unwrap()
}

const DOCUMENT: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document W><w:body>
<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Het regent alweer</w:t></w:r></w:p>
<w:p><w:pPr><w:jc w:val="both"/></w:pPr><w:bookmarkStart w:id="0" w:name="b"/><w:r><w:rPr><w:lang w:val="nl-NL"/></w:rPr><w:t xml:space="preserve">Ik heb vanochtend </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>kof</w:t></w:r><w:proofErr w:type="spellStart"/><w:r><w:rPr><w:b/></w:rPr><w:t>fie</w:t></w:r><w:proofErr w:type="spellEnd"/><w:r><w:t xml:space="preserve"> gedronken op het </w:t></w:r><w:hyperlink r:id="rId5"><w:r><w:rPr><w:rStyle w:val="Hyperlink"/></w:rPr><w:t>terras</w:t></w:r></w:hyperlink><w:r><w:t>.</w:t></w:r><w:bookmarkEnd w:id="0"/><w:r><w:rPr><w:rStyle w:val="FootnoteReference"/></w:rPr><w:footnoteReference w:id="1"/></w:r></w:p>
<w:p><w:r><w:t>Kun je de deur dichtdoen?</w:t></w:r><w:r><w:tab/><w:t>Ja &amp; nee.</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Ik blijf binnen.</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:ins w:id="9" w:author="Jan"><w:r><w:t xml:space="preserve">Wij blijven </w:t></w:r></w:ins><w:r><w:t>thuis</w:t></w:r><w:r><w:drawing><wp:inline><a:graphic><a:graphicData><wps:wsp><wps:txbx><w:txbxContent><w:p><w:r><w:t>Het regent hard.</w:t></w:r></w:p></w:txbxContent></wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:inline></w:drawing></w:r><w:r><w:t>.</w:t></w:r></w:p>
<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>7</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>
<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr></w:body></w:document>"#;

const FOOTNOTES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:footnotes W><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote><w:footnote w:id="1"><w:p><w:r><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> Het regent weer.</w:t></w:r></w:p></w:footnote></w:footnotes>"#;

pub(crate) fn docx() -> Vec<u8> {
    let document = DOCUMENT.replace(" W>", &format!(" {W}>"));
    let footnotes = FOOTNOTES.replace(" W>", &format!(" {W}>"));
    zip_of(&[
        (
            "[Content_Types].xml",
            b"<?xml version=\"1.0\"?><Types/>",
            false,
        ),
        ("word/document.xml", document.as_bytes(), false),
        ("word/footnotes.xml", footnotes.as_bytes(), false),
        (
            "word/header1.xml",
            b"<w:hdr><w:p><w:r><w:t>Weerbericht van vandaag</w:t></w:r></w:p></w:hdr>",
            false,
        ),
        (
            "word/comments.xml",
            b"<w:comments>Niet vertalen</w:comments>",
            false,
        ),
        ("word/media/image1.png", b"\x89PNG\r\n\x1a\n\x00\x01", true),
    ])
}

#[test]
fn docx_runs_are_joined_and_formatting_lands_on_the_moved_words() {
    let pipeline = copy_model();
    let input = docx();
    let markup = Markup::open_package(
        InputFormat::Docx,
        input.clone(),
        "a.docx",
        PackageLimits::default(),
    )
    .unwrap();
    let out = reversed(&pipeline, &markup);
    let file = out.file.as_ref().expect("a package is written as a file");
    let (before, after) = (entries(&input), entries(file));
    // Every entry, in order; the ones without text byte for byte.
    assert_eq!(
        before.iter().map(|e| &e.0).collect::<Vec<_>>(),
        after.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    for (b, a) in before.iter().zip(&after) {
        if ![
            "word/document.xml",
            "word/footnotes.xml",
            "word/header1.xml",
        ]
        .contains(&b.0.as_str())
        {
            assert_eq!(b, a, "{} changed", b.0);
        }
    }
    let doc = part(file, "word/document.xml");
    assert!(well_formed(&doc), "{doc}");
    // The words of each paragraph reversed, whole words across the split runs.
    let text = texts(&doc, "w:t");
    assert!(text.contains("alweer regent Het"), "{text}");
    assert!(
        text.contains("terras. het op gedronken koffie vanochtend heb Ik"),
        "{text}"
    );
    // Bold on `koffie` alone, in one run; the link around `terras.`; the old spell-check
    // marks gone, the bookmark, footnote reference, tab, field and section kept as written.
    assert!(
        doc.contains(r#"<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">koffie</w:t></w:r>"#),
        "{doc}"
    );
    // (The full stop outside the link in the source stays outside it.)
    assert!(doc.contains(r#"<w:hyperlink r:id="rId5"><w:r><w:rPr><w:rStyle w:val="Hyperlink"/></w:rPr><w:t xml:space="preserve">terras</w:t></w:r></w:hyperlink><w:r><w:rPr><w:lang w:val="en-US"/></w:rPr><w:t xml:space="preserve">. het op"#), "{doc}");
    assert!(!doc.contains("proofErr"), "{doc}");
    for kept in [
        r#"<w:bookmarkStart w:id="0" w:name="b"/>"#,
        r#"<w:bookmarkEnd w:id="0"/>"#,
        r#"<w:r><w:rPr><w:rStyle w:val="FootnoteReference"/></w:rPr><w:footnoteReference w:id="1"/></w:r>"#,
        r#"<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>7</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r>"#,
        r#"<w:pPr><w:pStyle w:val="Heading1"/></w:pPr>"#,
        r#"<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr>"#,
    ] {
        assert!(doc.contains(kept), "{kept} in {doc}");
    }
    // The runs' language is the translation's now (the fixture translates nl to en).
    assert!(
        !doc.contains("nl-NL") && doc.contains(r#"<w:lang w:val="en-US"/>"#),
        "{doc}"
    );
    // A tab is the space between its words, wrapped in a run of its own; `&` written as a
    // reference again.
    assert!(doc.contains("<w:r><w:tab/></w:r>"), "{doc}");
    assert!(doc.contains("nee. &amp; Ja"), "{doc}");
    // A text box is a paragraph of its own, translated inside its drawing, which stays where
    // it was; a tracked insertion stays around its (moved) words.
    assert!(doc.contains("<w:txbxContent><w:p><w:r><w:t xml:space=\"preserve\">hard. regent Het</w:t></w:r></w:p></w:txbxContent>"), "{doc}");
    assert!(doc.contains(r#"<w:ins w:id="9" w:author="Jan"><w:r><w:t xml:space="preserve">blijven Wij</w:t></w:r></w:ins>"#), "{doc}");
    assert!(part(file, "word/header1.xml").contains("vandaag van Weerbericht"));
    // Footnotes are translated too; the separator is kept.
    let notes = part(file, "word/footnotes.xml");
    assert!(notes.contains("weer. regent Het"), "{notes}");
    assert!(notes.contains("<w:separator/>"), "{notes}");
    // The article that was summarised: the heading, the paragraphs, the footnote.
    assert!(
        out.output.source.contains("Het regent alweer\n"),
        "{}",
        out.output.source
    );
    assert!(
        out.output.source.contains("Het regent weer."),
        "{}",
        out.output.source
    );
}

const SLIDE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><p:sld xmlns:a="a" xmlns:p="p"><p:cSld><p:spTree><p:sp><p:nvSpPr><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:rPr lang="nl-NL"/><a:t>Het regent alweer</a:t></a:r></a:p></p:txBody></p:sp><p:sp><p:txBody><a:p><a:pPr lvl="0"/><a:r><a:rPr lang="nl-NL" dirty="0"/><a:t>We gaan naar het </a:t></a:r><a:r><a:rPr lang="nl-NL" i="1"/><a:t>strand</a:t></a:r><a:r><a:rPr lang="nl-NL"/><a:t>.</a:t></a:r><a:r><a:rPr baseline="30000"/><a:t>1</a:t></a:r><a:br><a:rPr/></a:br><a:r><a:rPr lang="nl-NL"/><a:t>Ik blijf binnen.</a:t></a:r><a:endParaRPr lang="nl-NL"/></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#;

#[test]
fn pptx_slides_and_notes() {
    let notes = r#"<p:notes xmlns:a="a" xmlns:p="p"><a:p><a:r><a:rPr/><a:t>Zeg iets over het weer.</a:t></a:r></a:p></p:notes>"#;
    let input = zip_of(&[
        ("ppt/presentation.xml", b"<p:presentation/>", false),
        (
            "ppt/slides/slide10.xml",
            SLIDE.replace("alweer", "weer").as_bytes(),
            false,
        ),
        ("ppt/slides/slide2.xml", SLIDE.as_bytes(), false),
        ("ppt/notesSlides/notesSlide2.xml", notes.as_bytes(), false),
        (
            "ppt/slideLayouts/slideLayout1.xml",
            b"<a:p><a:r><a:t>Klik hier</a:t></a:r></a:p>",
            false,
        ),
    ]);
    let markup = Markup::open_package(
        InputFormat::Pptx,
        input.clone(),
        "a.pptx",
        PackageLimits::default(),
    )
    .unwrap();
    let out = reversed(&copy_model(), &markup);
    let file = out.file.unwrap();
    let slide = part(&file, "ppt/slides/slide2.xml");
    assert!(well_formed(&slide), "{slide}");
    assert!(slide.contains(r#"<a:r><a:rPr lang="en-US" i="1"/><a:t>strand</a:t></a:r><a:r><a:rPr lang="en-US" dirty="0"/><a:t>. het naar gaan We</a:t></a:r>"#), "{slide}");
    // The note number, the line break and the end-of-paragraph properties kept, in place.
    assert!(
        slide.contains(r#"<a:r><a:rPr baseline="30000"/><a:t>1</a:t></a:r>"#),
        "{slide}"
    );
    assert!(slide.contains(r#"<a:br><a:rPr/></a:br>"#), "{slide}");
    assert!(
        slide.ends_with(
            r#"<a:endParaRPr lang="en-US"/></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
        ),
        "{slide}"
    );
    assert!(
        texts(&slide, "a:t").starts_with("alweer regent Het"),
        "{slide}"
    );
    assert!(part(&file, "ppt/notesSlides/notesSlide2.xml").contains("weer. het over iets Zeg"));
    // Layouts (prompt text) untouched; slides in number order: 2 before 10.
    assert_eq!(
        part(&file, "ppt/slideLayouts/slideLayout1.xml"),
        "<a:p><a:r><a:t>Klik hier</a:t></a:r></a:p>"
    );
    let article = &out.output.source;
    assert!(
        article.find("Het regent alweer") < article.find("Het regent weer"),
        "{article}"
    );
}

#[test]
fn odt_spans_notes_and_lists() {
    let content = r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="o" xmlns:text="t"><office:body><office:text><text:h text:outline-level="1">Het regent alweer</text:h><text:p>Ik heb vanochtend <text:span text:style-name="T1">koffie</text:span><text:s text:c="2"/>gedronken.<text:note text:id="n1"><text:note-citation>1</text:note-citation><text:note-body><text:p>Het regent weer.</text:p></text:note-body></text:note></text:p><text:list><text:list-item><text:p>Ik blijf binnen.</text:p></text:list-item></text:list><text:p><office:annotation><text:p>Niet vertalen</text:p></office:annotation>Kun je de deur dichtdoen?</text:p></office:text></office:body></office:document-content>"#;
    let input = zip_of(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text", true),
        ("content.xml", content.as_bytes(), false),
        ("META-INF/manifest.xml", b"<manifest/>", false),
    ]);
    let markup = Markup::open_package(
        InputFormat::Odt,
        input.clone(),
        "a.odt",
        PackageLimits::default(),
    )
    .unwrap();
    let out = reversed(&copy_model(), &markup);
    let file = out.file.unwrap();
    let after = entries(&file);
    assert_eq!(after[0].0, "mimetype");
    assert_eq!(
        after[0].1,
        CompressionMethod::Stored,
        "mimetype stays first and stored"
    );
    let c = part(&file, "content.xml");
    assert!(well_formed(&c), "{c}");
    assert!(
        c.contains(r#"<text:h text:outline-level="1">alweer regent Het</text:h>"#),
        "{c}"
    );
    assert!(
        c.contains(r#"<text:span text:style-name="T1">koffie</text:span>"#),
        "{c}"
    );
    assert!(
        c.contains("<text:note-body><text:p>weer. regent Het</text:p>"),
        "{c}"
    );
    assert!(
        c.contains("<text:note-citation>1</text:note-citation>"),
        "{c}"
    );
    assert!(
        c.contains("<office:annotation><text:p>Niet vertalen</text:p></office:annotation>"),
        "{c}"
    );
    assert!(c.contains("dichtdoen? deur de je Kun"), "{c}");
}

#[test]
fn epub_chapters_navigation_and_title() {
    let container = br#"<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
    let opf = r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" xmlns:dc="http://purl.org/dc/elements/1.1/"><metadata><dc:title>Het regent alweer</dc:title><dc:language>nl</dc:language></metadata><manifest><item id="c2" href="Text/h%202.xhtml" media-type="application/xhtml+xml"/><item id="c1" href="Text/h1.xhtml" media-type="application/xhtml+xml"/><item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/><item id="css" href="s.css" media-type="text/css"/></manifest><spine toc="ncx"><itemref idref="c1"/><itemref idref="c2"/></spine></package>"#;
    let chapter = |t: &str| {
        format!(
            r##"<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{t}</title></head><body><p>Ik heb <b>koffie</b> gedronken&#160;op het terras.<a href="#n1" epub:type="noteref">1</a></p></body></html>"##
        )
    };
    let (c1, c2) = (chapter("Een"), chapter("Twee"));
    let ncx = r#"<ncx><navMap><navPoint><navLabel><text>Het regent alweer</text></navLabel><content src="Text/h1.xhtml"/></navPoint></navMap></ncx>"#;
    let input = zip_of(&[
        ("mimetype", b"application/epub+zip", true),
        ("META-INF/container.xml", container, false),
        ("OEBPS/content.opf", opf.as_bytes(), false),
        ("OEBPS/Text/h1.xhtml", c1.as_bytes(), false),
        ("OEBPS/Text/h 2.xhtml", c2.as_bytes(), false),
        ("OEBPS/toc.ncx", ncx.as_bytes(), false),
        ("OEBPS/s.css", b"p { color: red }", false),
    ]);
    let markup = Markup::open_package(
        InputFormat::Epub,
        input.clone(),
        "a.epub",
        PackageLimits::default(),
    )
    .unwrap();
    let out = reversed(&copy_model(), &markup);
    let file = out.file.unwrap();
    let after = entries(&file);
    assert_eq!(
        (after[0].0.as_str(), after[0].1),
        ("mimetype", CompressionMethod::Stored)
    );
    assert_eq!(after[0].2, b"application/epub+zip");
    for name in ["OEBPS/Text/h1.xhtml", "OEBPS/Text/h 2.xhtml"] {
        let x = part(&file, name);
        assert!(well_formed(&x), "{x}");
        // XML's character reference, not HTML's `&nbsp;`; the note link kept after its word.
        assert!(!x.contains("&nbsp;"), "{x}");
        assert!(
            x.contains(r##"<a href="#n1" epub:type="noteref">1</a>"##),
            "{x}"
        );
        assert!(x.contains("terras."), "{x}");
    }
    let opf_out = part(&file, "OEBPS/content.opf");
    assert!(
        opf_out.contains("<dc:title>alweer regent Het</dc:title>"),
        "{opf_out}"
    );
    assert!(
        opf_out.contains("<dc:language>en</dc:language>"),
        "{opf_out}"
    );
    assert!(part(&file, "OEBPS/toc.ncx").contains("<text>alweer regent Het</text>"));
    // Spine order: chapter one's title before chapter two's in the article.
    let a = &out.output.source;
    assert!(a.find("Een") < a.find("Twee"), "{a}");
}

#[test]
fn zip_bombs_damaged_and_encrypted_packages_are_refused() {
    let limits = PackageLimits {
        entries: 10,
        part_bytes: 1 << 20,
        total_bytes: 3 << 20,
    };
    // A part that decompresses past the limit (2 MiB of zeros, a few KiB in the zip).
    let zeros = vec![b' '; 2 << 20];
    let mut doc = b"<w:document><w:body><w:p><w:r><w:t>a</w:t></w:r></w:p>".to_vec();
    doc.extend(&zeros);
    doc.extend(b"</w:body></w:document>");
    let bomb = zip_of(&[("word/document.xml", &doc, false)]);
    assert!(bomb.len() < 64 << 10);
    let e = Markup::open_package(InputFormat::Docx, bomb, "bomb.docx", limits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bomb.docx:word/document.xml") && e.contains("1 MiB") && e.contains("zip bomb"),
        "{e}"
    );
    // Too many entries.
    let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    let many: Vec<(&str, &[u8], bool)> =
        names.iter().map(|n| (n.as_str(), &b""[..], true)).collect();
    let e = Markup::open_package(InputFormat::Docx, zip_of(&many), "many.docx", limits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("11 entries") && e.contains("limit of 10"), "{e}");
    // Entities from a DTD are never expanded.
    let dtd = br#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">]><w:document><w:body><w:p><w:r><w:t>&a;</w:t></w:r></w:p></w:body></w:document>"#;
    let e = Markup::open_package(
        InputFormat::Docx,
        zip_of(&[("word/document.xml", dtd, false)]),
        "dtd.docx",
        limits,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("dtd.docx:word/document.xml") && e.contains("internal subset"),
        "{e}"
    );
    // Not a zip; a zip without the main part; an encrypted entry (the flag set by hand).
    let e = Markup::open_package(
        InputFormat::Docx,
        b"Ik ben tekst".to_vec(),
        "t.docx",
        limits,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("t.docx") && e.contains("not a readable zip"),
        "{e}"
    );
    let e = Markup::open_package(
        InputFormat::Docx,
        zip_of(&[("x.xml", b"<x/>", false)]),
        "x.docx",
        limits,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("word/document.xml"), "{e}");
    let mut locked = zip_of(&[("word/document.xml", b"<w:document/>", true)]);
    for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
        let at = locked.windows(4).position(|w| w == sig).unwrap();
        let flag = at + if sig[2] == 3 { 6 } else { 8 };
        locked[flag] |= 1;
    }
    let e = Markup::open_package(InputFormat::Docx, locked, "locked.docx", limits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("encrypted") && e.contains("without a password"),
        "{e}"
    );
}

const VTT: &str = "WEBVTT\n\nNOTE Ik blijf staan --\n\nSTYLE\n::cue { color: yellow }\n\n1\n00:00:01.000 --> 00:00:03.000 align:start\nIk heb vanochtend <i>koffie</i>\ngedronken op het terras,\n\n2\n00:00:03.600 --> 00:00:06.200 align:start line:0\nen we gaan morgen met de fiets\nnaar het strand &amp; de zee.\n\n00:00:07.000 --> 00:00:08.000\nHet regent alweer.\n";

#[test]
fn subtitles_keep_their_timing_and_split_sentences_over_their_cues() {
    let markup = Markup::parse(InputFormat::Vtt, VTT, "a.vtt").unwrap();
    let out = with(&Swap, &copy_model(), &markup);
    let doc = &out.document;
    // Everything but the cue text as it was.
    for kept in [
        "WEBVTT\n\nNOTE Ik blijf staan --\n\nSTYLE\n::cue { color: yellow }\n\n1\n00:00:01.000 --> 00:00:03.000 align:start\n",
        "\n\n2\n00:00:03.600 --> 00:00:06.200 align:start line:0\n",
        "\n\n00:00:07.000 --> 00:00:08.000\n",
    ] {
        assert!(doc.contains(kept), "{kept:?} in {doc}");
    }
    // The sentence over two cues is one sentence for the model.
    assert!(
        out.output
            .sentences
            .iter()
            .any(|s| s.source.contains("terras, en we gaan")),
        "{:?}",
        out.output.sentences
    );
    // Its translation split over the same two cues, neither empty, each on as many lines as
    // it had; `&` escaped again, the italics kept on `koffie`.
    let cue = |k: usize| {
        doc.split("\n\n")
            .filter(|b| b.contains("-->"))
            .nth(k)
            .unwrap()
            .split_once('\n')
            .unwrap()
            .1
            .split_once('\n')
            .map_or("", |x| x.1)
            .to_string()
    };
    let (one, two) = (cue(0), cue(1));
    assert_eq!(one.lines().count(), 2, "{doc}");
    assert_eq!(two.lines().count(), 2, "{doc}");
    assert_eq!(
        one.replace('\n', " "),
        "heb Ik <i>koffie</i> vanochtend op gedronken terras, het",
        "{doc}"
    );
    assert_eq!(
        two.replace('\n', " "),
        "we en morgen gaan de met naar fiets strand het de &amp; zee.",
        "{doc}"
    );
    assert!(doc.ends_with("\nregent Het alweer.\n"), "{doc}");
    // SubRip: CRLF line ends kept, the text as written (no references).
    let srt = "1\r\n00:00:01,000 --> 00:00:03,000\r\nIk heb <b>koffie</b> & thee\r\ngedronken.\r\n";
    let (m, _) = Markup::read(
        InputFormat::Srt,
        srt.as_bytes(),
        "a.srt",
        &Default::default(),
    )
    .unwrap();
    let out = with(&Swap, &copy_model(), &m);
    assert_eq!(
        out.document,
        "1\r\n00:00:01,000 --> 00:00:03,000\r\nheb Ik & <b>koffie</b>\r\ngedronken. thee\r\n"
    );
    // A WebVTT file must say so.
    let e = Markup::parse(
        InputFormat::Vtt,
        "1\n00:00:01.000 --> 00:00:02.000\nHoi\n",
        "b.vtt",
    )
    .unwrap_err();
    assert!(e.to_string().contains("WEBVTT"), "{e}");
}

#[test]
fn cli_translates_a_docx_to_a_docx_and_refuses_a_terminal() {
    let env = Env::new();
    let input = env.write("a.docx", docx());
    let model = fixture_dir("marian-tiny-trained").display().to_string();
    let out = env.path("b.docx");
    env.run(&[
        "translate",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        &model,
        "--num-beams",
        "1",
    ])
    .code(0);
    let file = std::fs::read(&out).unwrap();
    // The copy fixture says the Dutch again: the text as it was, in new runs.
    let doc = part(&file, "word/document.xml");
    assert!(well_formed(&doc), "{doc}");
    assert!(
        texts(&doc, "w:t").contains("Kun je de deur dichtdoen?"),
        "{doc}"
    );
    // As JSON: the article's record.
    let run = env
        .run(&[
            "translate",
            input.to_str().unwrap(),
            "--format",
            "json",
            "--model",
            &model,
            "--num-beams",
            "1",
        ])
        .code(0);
    assert!(run.json()["source"]
        .as_str()
        .unwrap()
        .contains("Het regent alweer"));
    // A damaged file: a clear error before the model loads, nothing written.
    let bad = env.write("c.docx", b"PK\x03\x04 broken");
    let run = env.run(&[
        "translate",
        bad.to_str().unwrap(),
        "-o",
        env.path("d.docx").to_str().unwrap(),
        "--model",
        &model,
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("c.docx") && run.stderr.contains("zip"),
        "{}",
        run.stderr
    );
    assert!(!env.path("d.docx").exists());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever a stranger sends as subtitles or as a Word document's text, it is read and
    /// written without a panic: an error, or a document.
    #[test]
    fn strange_subtitles_and_office_xml_never_panic(
        body in "[a-z我é<>{}/\\\\\\- \n:0-9.,&;#!?iv]{0,160}",
        vtt in proptest::bool::ANY,
    ) {
        let pipeline = copy_model();
        let text = if vtt { format!("WEBVTT\n\n00:01.000 --> 00:02.000\n{body}") } else { format!("1\n00:00:01,000 --> 00:00:02,000\n{body}\n\n2\n00:00:03,000 --> 00:00:04,000\n{body}") };
        let format = if vtt { InputFormat::Vtt } else { InputFormat::Srt };
        if let Ok(m) = Markup::parse(format, text, "p") {
            let out = with(&Swap, &pipeline, &m);
            proptest::prop_assert!(out.document.contains("-->"));
        }
        let xml = format!("<w:document><w:body><w:p><w:r><w:t>{body}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>{body}</w:t></w:r></w:p></w:body></w:document>");
        let docx = zip_of(&[("word/document.xml", xml.as_bytes(), false)]);
        if let Ok(m) = Markup::open_package(InputFormat::Docx, docx, "p.docx", PackageLimits::default()) {
            let out = with(&Reverse, &pipeline, &m);
            proptest::prop_assert!(out.file.is_some());
        }
    }
}

/// A Word document whose body is `body` (paragraphs), translated by `translator`: the
/// translated `word/document.xml`, or the error.
fn word(translator: &dyn SegmentTranslator, body: &str) -> Result<String, String> {
    let xml = format!("<w:document {W}><w:body>{body}</w:body></w:document>");
    let input = zip_of(&[("word/document.xml", xml.as_bytes(), false)]);
    let markup = Markup::open_package(InputFormat::Docx, input, "t.docx", PackageLimits::default())
        .map_err(|e| e.to_string())?;
    let out = with(translator, &copy_model(), &markup);
    Ok(part(&out.file.unwrap(), "word/document.xml"))
}

/// "Translates" every sentence as one word.
struct OneWord;

impl SegmentTranslator for OneWord {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> tolk::Result<Vec<Translation>> {
        Ok(texts
            .iter()
            .map(|t| made_up(t, "Well.".to_string(), vec![Some(0)], generation))
            .collect())
    }
}

#[test]
fn odd_word_files_are_read_without_loss_or_panic() {
    // Paragraphs nested past the limit: refused, not a stack overflow.
    let deep = format!(
        "{}<w:r><w:t>x</w:t></w:r>{}",
        "<w:p>".repeat(100),
        "</w:p>".repeat(100)
    );
    let e = word(&Reverse, &deep).unwrap_err();
    assert!(e.contains("nested more than"), "{e}");
    // An empty text element.
    let doc = word(
        &Reverse,
        "<w:p><w:r><w:t>Het regent</w:t></w:r><w:r><w:t/></w:r></w:p>",
    )
    .unwrap();
    assert!(texts(&doc, "w:t").contains("regent Het"), "{doc}");
    // A font change is formatting: kept on its word.
    let doc = word(&Swap, r#"<w:p><w:r><w:t xml:space="preserve">Typ </w:t></w:r><w:r><w:rPr><w:rFonts w:ascii="Consolas"/></w:rPr><w:t>ls</w:t></w:r><w:r><w:t xml:space="preserve"> in de terminal.</w:t></w:r></w:p>"#).unwrap();
    assert!(
        doc.contains(
            r#"<w:rPr><w:rFonts w:ascii="Consolas"/></w:rPr><w:t xml:space="preserve">ls</w:t>"#
        ),
        "{doc}"
    );
    // A superscript in a run that holds more: nothing written twice.
    let doc = word(&Reverse, r#"<w:p><w:r><w:t>Oppervlak 10 m</w:t></w:r><w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:t>2</w:t><w:tab/><w:t>groot</w:t></w:r></w:p>"#).unwrap();
    assert_eq!(doc.matches("groot").count(), 1, "{doc}");
    assert_eq!(doc.matches("<w:tab/>").count(), 1, "{doc}");
    // A tab in a run of its own: no space after it.
    let doc = word(
        &Swap,
        "<w:p><w:r><w:t>Een</w:t></w:r><w:r><w:tab/></w:r><w:r><w:t>twee drie</w:t></w:r></w:p>",
    )
    .unwrap();
    assert!(!doc.contains("> "), "{doc}");
    // The markers' own characters in an attribute: written as references, the XML whole.
    let doc = word(&Reverse, "<w:p><w:r><w:t>Het regent</w:t></w:r><w:r><w:drawing><wp:docPr descr=\"a\u{fdd7}b\"/></w:drawing></w:r><w:r><w:t>alweer.</w:t></w:r></w:p>").unwrap();
    assert!(doc.contains("descr=\"a&#xFDD7;b\""), "{doc}");
    assert!(well_formed(&doc), "{doc}");
    // A table of contents: a field that goes on in later paragraphs.
    let toc = r#"<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> TOC \o "1-3" </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:hyperlink w:anchor="_Toc1"><w:r><w:t>Het weer van vandaag</w:t></w:r><w:r><w:tab/></w:r><w:r><w:t>1</w:t></w:r></w:hyperlink></w:p><w:p><w:r><w:t>Tweede kop</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>"#;
    let doc = word(&Reverse, toc).unwrap();
    let begin = doc.find("fldCharType=\"begin\"").unwrap();
    let instr = doc.find("instrText").unwrap();
    let separate = doc.find("fldCharType=\"separate\"").unwrap();
    assert!(
        begin < instr && instr < separate,
        "the field's code in order: {doc}"
    );
    assert_eq!(doc.matches("vandaag").count(), 1, "{doc}");
    assert!(doc.contains("vandaag van weer Het"), "{doc}");
}

#[test]
fn cues_left_without_words_get_the_words_dealt_out() {
    let srt = "1\n00:00:01,000 --> 00:00:02,000\nNou\n\n2\n00:00:02,000 --> 00:00:03,000\nja\n\n3\n00:00:03,000 --> 00:00:04,000\nhoor.\n";
    let markup = Markup::parse(InputFormat::Srt, srt, "a.srt").unwrap();
    let out = with(&OneWord, &copy_model(), &markup);
    assert_eq!(
        out.document,
        "1\n00:00:01,000 --> 00:00:02,000\nWell.\n\n2\n00:00:02,000 --> 00:00:03,000\n…\n\n3\n00:00:03,000 --> 00:00:04,000\n…\n"
    );
}

#[test]
fn odp_slides_frames_and_notes() {
    let content = r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="o" xmlns:text="t" xmlns:draw="d" xmlns:presentation="p"><office:body><office:presentation><draw:page draw:name="dia1"><draw:frame presentation:class="title"><draw:text-box><text:p>Het regent alweer</text:p></draw:text-box></draw:frame><draw:frame><draw:text-box><text:list><text:list-item><text:p>Ik heb <text:span text:style-name="T1">koffie</text:span> gedronken.</text:p></text:list-item></text:list></draw:text-box></draw:frame><presentation:notes><draw:frame><draw:text-box><text:p>Zeg iets over het weer.</text:p></draw:text-box></draw:frame></presentation:notes></draw:page></office:presentation></office:body></office:document-content>"#;
    let input = zip_of(&[
        (
            "mimetype",
            b"application/vnd.oasis.opendocument.presentation",
            true,
        ),
        ("content.xml", content.as_bytes(), false),
        ("Pictures/a.png", b"\x89PNG", true),
    ]);
    let markup =
        Markup::open_package(InputFormat::Odp, input, "a.odp", PackageLimits::default()).unwrap();
    let out = reversed(&copy_model(), &markup);
    let file = out.file.unwrap();
    let c = part(&file, "content.xml");
    assert!(well_formed(&c), "{c}");
    assert!(c.contains("<text:p>alweer regent Het</text:p>"), "{c}");
    assert!(
        c.contains(r#"<text:span text:style-name="T1">koffie</text:span>"#),
        "{c}"
    );
    assert!(
        c.contains("<text:p>weer. het over iets Zeg</text:p>"),
        "{c}"
    );
    assert_eq!(entries(&file)[2].2, b"\x89PNG");
    // The list item is read as one.
    assert!(
        out.output.source.contains("- Ik heb koffie gedronken."),
        "{}",
        out.output.source
    );
}
