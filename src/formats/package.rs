//! Zip packages from strangers (DOCX, PPTX, ODT, ODP, EPUB): read with limits, written back
//! with every entry that was not translated copied as it was, compressed bytes and all.
//!
//! A zip can claim anything in its headers, so sizes are checked while decompressing: at most
//! [`PackageLimits::entries`] entries, [`PackageLimits::part_bytes`] for any part read and
//! [`PackageLimits::total_bytes`] for all of them together. An encrypted entry, a damaged
//! archive or a part that is not UTF-8 is refused with a message naming the part.

use std::collections::HashMap;
use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::office::Dialect;
use super::{InputFormat, PartKind};
use crate::error::{Error, Result};

/// How much of a zip package is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Entries in the archive. Default 10 000.
    pub entries: usize,
    /// Decompressed bytes of one part that is read. Default 64 MiB.
    pub part_bytes: u64,
    /// Decompressed bytes of all the parts read. Default 256 MiB.
    pub total_bytes: u64,
}

impl Default for PackageLimits {
    fn default() -> Self {
        PackageLimits {
            entries: 10_000,
            part_bytes: 64 << 20,
            total_bytes: 256 << 20,
        }
    }
}

/// An opened zip package.
#[derive(Clone)]
pub(crate) struct Package {
    name: String,
    bytes: std::sync::Arc<Vec<u8>>,
    /// Entry names, in archive order.
    entries: Vec<String>,
    limits: PackageLimits,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("name", &self.name)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn refused(name: &str, message: String) -> Error {
    Error::Input {
        source_name: name.to_string(),
        message,
        remedy: None,
    }
}

impl Package {
    /// Opens the zip in `bytes` (`name`: the file, for messages).
    pub fn open(bytes: Vec<u8>, name: &str, limits: PackageLimits) -> Result<Package> {
        let bytes = std::sync::Arc::new(bytes);
        let mut zip = ZipArchive::new(Cursor::new(bytes.as_slice())).map_err(|e| {
            refused(
                name,
                format!("not a readable zip package ({e}); the file is damaged or not what its name says"),
            )
        })?;
        if zip.len() > limits.entries {
            return Err(refused(
                name,
                format!(
                    "the package has {} entries, more than the limit of {}; it is refused as a possible zip bomb",
                    zip.len(),
                    limits.entries
                ),
            ));
        }
        let mut entries = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let file = zip.by_index_raw(i).map_err(|e| {
                refused(
                    name,
                    format!("entry {i} of the package cannot be read: {e}"),
                )
            })?;
            let entry = file
                .name()
                .map_err(|e| refused(name, format!("entry {i} has a bad name: {e}")))?
                .to_string();
            if file.encrypted() {
                return Err(refused(
                    name,
                    format!("`{entry}` is encrypted: save the document without a password and try again"),
                ));
            }
            entries.push(entry);
        }
        Ok(Package {
            name: name.to_string(),
            bytes,
            entries,
            limits,
            read: Default::default(),
        })
    }

    /// Its entry names, in archive order.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Whether it has an entry named `entry`.
    pub fn has(&self, entry: &str) -> bool {
        self.entries.iter().any(|e| e == entry)
    }

    /// `name:entry`, for messages about a part.
    pub fn part_name(&self, entry: &str) -> String {
        format!("{}:{entry}", self.name)
    }

    /// The bytes of `entry`, decompressed within the limits.
    pub fn read(&self, entry: &str) -> Result<Vec<u8>> {
        let part = self.part_name(entry);
        let mut zip = ZipArchive::new(Cursor::new(self.bytes.as_slice()))
            .map_err(|e| refused(&part, format!("the package cannot be read again: {e}")))?;
        let file = zip
            .by_name(entry)
            .map_err(|e| refused(&part, format!("this part cannot be read: {e}")))?;
        let left = self
            .limits
            .total_bytes
            .saturating_sub(self.read.load(std::sync::atomic::Ordering::Relaxed));
        let cap = self.limits.part_bytes.min(left);
        let mut out = Vec::new();
        file.take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| refused(&part, format!("this part cannot be decompressed: {e}")))?;
        if out.len() as u64 > cap {
            let (limit, what) = if cap == self.limits.part_bytes {
                (self.limits.part_bytes, "for one part")
            } else {
                (self.limits.total_bytes, "for all the parts read")
            };
            return Err(refused(
                &part,
                format!(
                    "it decompresses to more than the limit of {} MiB {what}; the package is refused as a possible zip bomb",
                    limit >> 20
                ),
            ));
        }
        self.read
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(out)
    }

    /// [`Package::read`] as UTF-8 text (a byte-order mark dropped).
    pub fn read_text(&self, entry: &str) -> Result<String> {
        let bytes = self.read(entry)?;
        let bytes = bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&bytes)
            .to_vec();
        String::from_utf8(bytes).map_err(|e| {
            refused(
                &self.part_name(entry),
                format!(
                    "this part is not UTF-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })
    }

    /// The package with the entries in `replaced` written with new contents (deflated, in
    /// their place in the archive) and every other entry copied as it was.
    pub fn write(&self, replaced: &HashMap<String, String>) -> Result<Vec<u8>> {
        let err = |e: &dyn std::fmt::Display| {
            refused(
                &self.name,
                format!("the translated package cannot be written: {e}"),
            )
        };
        let mut zip = ZipArchive::new(Cursor::new(self.bytes.as_slice())).map_err(|e| err(&e))?;
        let mut out = ZipWriter::new(Cursor::new(Vec::with_capacity(self.bytes.len() + 4096)));
        for i in 0..zip.len() {
            let file = zip.by_index_raw(i).map_err(|e| err(&e))?;
            let name = file.name().map_err(|e| err(&e))?.to_string();
            match replaced.get(&name) {
                Some(text) => {
                    let options = SimpleFileOptions::default()
                        .compression_method(CompressionMethod::Deflated)
                        .last_modified_time(file.last_modified().unwrap_or_default());
                    drop(file);
                    out.start_file(name.as_str(), options)
                        .map_err(|e| err(&e))?;
                    out.write_all(text.as_bytes()).map_err(|e| err(&e))?;
                }
                None => out.raw_copy_file(file).map_err(|e| err(&e))?,
            }
        }
        let cursor = out.finish().map_err(|e| err(&e))?;
        Ok(cursor.into_inner())
    }
}

/// The parts of `package` that hold a `format` document's text, in reading order, with how
/// each is read.
pub(super) fn plan(package: &Package, format: InputFormat) -> Result<Vec<(String, PartKind)>> {
    let entries = package.entries();
    let numbered = |prefix: &str, suffix: &str| -> Vec<String> {
        let mut found: Vec<(u64, String)> = entries
            .iter()
            .filter_map(|e| {
                let n = e.strip_prefix(prefix)?.strip_suffix(suffix)?;
                let k = if n.is_empty() { 0 } else { n.parse().ok()? };
                Some((k, e.clone()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, e)| e).collect()
    };
    let missing = |what: &str, entry: &str| {
        refused(
            &package.name,
            format!(
                "not a {what}: it has no `{entry}`; is it really a .{} file?",
                format.name()
            ),
        )
    };
    let mut plan = Vec::new();
    match format {
        InputFormat::Docx => {
            let word = PartKind::Xml(Dialect::Word);
            if !package.has("word/document.xml") {
                return Err(missing("Word document", "word/document.xml"));
            }
            for e in numbered("word/header", ".xml") {
                plan.push((e, word));
            }
            plan.push(("word/document.xml".to_string(), word));
            for e in ["word/footnotes.xml", "word/endnotes.xml"] {
                if package.has(e) {
                    plan.push((e.to_string(), word));
                }
            }
            for e in numbered("word/footer", ".xml") {
                plan.push((e, word));
            }
        }
        InputFormat::Pptx => {
            let drawing = PartKind::Xml(Dialect::Drawing);
            let slides = numbered("ppt/slides/slide", ".xml");
            if slides.is_empty() && !package.has("ppt/presentation.xml") {
                return Err(missing("PowerPoint presentation", "ppt/presentation.xml"));
            }
            for slide in slides {
                let n = &slide["ppt/slides/slide".len()..];
                let notes = format!("ppt/notesSlides/notesSlide{n}");
                plan.push((slide, drawing));
                if package.has(&notes) {
                    plan.push((notes, drawing));
                }
            }
        }
        InputFormat::Odt | InputFormat::Odp => {
            let open = PartKind::Xml(Dialect::Open);
            if !package.has("content.xml") {
                return Err(missing("OpenDocument file", "content.xml"));
            }
            if package.has("styles.xml") {
                plan.push(("styles.xml".to_string(), open));
            }
            plan.push(("content.xml".to_string(), open));
        }
        InputFormat::Epub => {
            if package.has("mimetype") {
                let m = package.read("mimetype")?;
                if m.trim_ascii() != b"application/epub+zip" {
                    return Err(refused(
                        &package.name,
                        "its `mimetype` is not application/epub+zip: not an EPUB".to_string(),
                    ));
                }
            }
            let container = package.read_text("META-INF/container.xml")?;
            let cpart = package.part_name("META-INF/container.xml");
            let opf = super::xml::tokens(&container, &cpart)?
                .iter()
                .find_map(|t| match t {
                    super::xml::Token::Start { name, range, .. }
                        if super::xml::local(name) == "rootfile" =>
                    {
                        super::xml::attribute(&container[range.clone()], "full-path")
                    }
                    _ => None,
                })
                .ok_or_else(|| missing("EPUB book", "rootfile in META-INF/container.xml"))?;
            let base = match opf.rfind('/') {
                Some(i) => &opf[..=i],
                None => "",
            };
            let manifest = package.read_text(&opf)?;
            let book = epub_parts(&manifest, &package.part_name(&opf))?;
            plan.push((opf.clone(), PartKind::Xml(Dialect::Opf)));
            for (href, kind) in book {
                let entry = resolve(base, &href);
                if package.has(&entry) && !plan.iter().any(|(e, _)| *e == entry) {
                    plan.push((entry, kind));
                }
            }
        }
        other => {
            return Err(refused(
                &package.name,
                format!("{} is not a package format", other.name()),
            ))
        }
    }
    Ok(plan)
}

/// The XHTML documents of an EPUB's package document in spine order (then the other XHTML
/// documents of its manifest, such as the navigation document), and its NCX: (href, kind).
fn epub_parts(opf: &str, part: &str) -> Result<Vec<(String, PartKind)>> {
    use super::xml::{attribute, tokens, Token};
    let toks = tokens(opf, part)?;
    let mut items: Vec<(String, String, String)> = Vec::new(); // id, href, media type
    let mut spine: Vec<String> = Vec::new();
    for t in &toks {
        if let Token::Start { name, range, .. } = t {
            let tag = &opf[range.clone()];
            match super::xml::local(name) {
                "item" => items.push((
                    attribute(tag, "id").unwrap_or_default(),
                    attribute(tag, "href").unwrap_or_default(),
                    attribute(tag, "media-type").unwrap_or_default(),
                )),
                "itemref" => spine.extend(attribute(tag, "idref")),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    let xhtml = |m: &str| m == "application/xhtml+xml" || m == "text/html";
    for id in &spine {
        if let Some((_, href, m)) = items.iter().find(|(i, _, _)| i == id) {
            if xhtml(m) {
                out.push((href.clone(), PartKind::Html));
            }
        }
    }
    for (_, href, m) in &items {
        if xhtml(m) && !out.iter().any(|(h, _)| h == href) {
            out.push((href.clone(), PartKind::Html));
        } else if m == "application/x-dtbncx+xml" {
            out.push((href.clone(), PartKind::Xml(Dialect::Ncx)));
        }
    }
    Ok(out)
}

/// `href` (relative, percent-encoded) against the folder `base` of the package document.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or("");
    let mut decoded = Vec::new();
    let b = href.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && href.is_char_boundary(i + 3) {
            if let Ok(v) = u8::from_str_radix(&href[i + 1..i + 3], 16) {
                decoded.push(v);
                i += 3;
                continue;
            }
        }
        decoded.push(b[i]);
        i += 1;
    }
    let href = String::from_utf8_lossy(&decoded);
    let mut path: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for seg in href.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                path.pop();
            }
            s => path.push(s),
        }
    }
    path.join("/")
}
