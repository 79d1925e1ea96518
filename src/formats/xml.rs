//! A small XML tokenizer for the parts of office files (WordprocessingML, DrawingML,
//! OpenDocument) and EPUB packages: every byte of the source in exactly one token, with its
//! byte range, so that everything the translation does not touch is written back as it was.
//!
//! It reads what those files hold and nothing more: elements, text, comments, processing
//! instructions, CDATA. A document type declaration with an internal subset (where entities
//! would be declared) is refused, and no entity other than XML's five and character references
//! is expanded: a stranger's file cannot make it read another file or expand a billion laughs.

use std::ops::Range;

use crate::error::{Error, Result};

/// One token of an XML source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A start tag (`<w:p w:rsidR="1">`) or an empty-element tag (`<w:tab/>`).
    Start {
        /// The qualified name (`w:p`).
        name: String,
        range: Range<usize>,
        empty: bool,
    },
    /// An end tag (`</w:p>`).
    End { name: String, range: Range<usize> },
    /// Character data between tags, entity references as written.
    Text { range: Range<usize> },
    /// A CDATA section: its content is text as written.
    Cdata {
        range: Range<usize>,
        content: Range<usize>,
    },
    /// A comment, a processing instruction, the XML declaration or a document type
    /// declaration.
    Other { range: Range<usize> },
}

impl Token {
    pub fn range(&self) -> &Range<usize> {
        match self {
            Token::Start { range, .. }
            | Token::End { range, .. }
            | Token::Text { range }
            | Token::Cdata { range, .. }
            | Token::Other { range } => range,
        }
    }

    /// The qualified name of a start or end tag.
    pub fn name(&self) -> Option<&str> {
        match self {
            Token::Start { name, .. } | Token::End { name, .. } => Some(name),
            _ => None,
        }
    }
}

fn malformed(part: &str, at: usize, what: &str) -> Error {
    Error::Input {
        source_name: part.to_string(),
        message: format!(
            "malformed XML at byte {at}: {what}; the file is damaged or not what its name says"
        ),
        remedy: None,
    }
}

/// The tokens of `source` (`part` names it in errors: the file and the part inside it).
pub(crate) fn tokens(source: &str, part: &str) -> Result<Vec<Token>> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    let find = |from: usize, pat: &str| source[from..].find(pat).map(|i| from + i);
    while pos < bytes.len() {
        if bytes[pos] != b'<' {
            let end = find(pos, "<").unwrap_or(bytes.len());
            out.push(Token::Text { range: pos..end });
            pos = end;
            continue;
        }
        let rest = &source[pos..];
        if rest.starts_with("<!--") {
            let end = find(pos + 4, "-->")
                .ok_or_else(|| malformed(part, pos, "a comment that does not end"))?;
            out.push(Token::Other {
                range: pos..end + 3,
            });
            pos = end + 3;
        } else if rest.starts_with("<![CDATA[") {
            let end = find(pos + 9, "]]>")
                .ok_or_else(|| malformed(part, pos, "a CDATA section that does not end"))?;
            out.push(Token::Cdata {
                range: pos..end + 3,
                content: pos + 9..end,
            });
            pos = end + 3;
        } else if rest.starts_with("<?") {
            let end = find(pos + 2, "?>").ok_or_else(|| {
                malformed(part, pos, "a processing instruction that does not end")
            })?;
            out.push(Token::Other {
                range: pos..end + 2,
            });
            pos = end + 2;
        } else if rest.starts_with("<!") {
            // A document type declaration: kept as written, never read; one with an internal
            // subset (entity declarations) is refused.
            let end = tag_end(bytes, pos)
                .ok_or_else(|| malformed(part, pos, "a declaration that does not end"))?;
            if source[pos..end].contains('[') {
                return Err(Error::Input {
                    source_name: part.to_string(),
                    message: format!(
                        "byte {pos}: a document type declaration with an internal subset (entity declarations); such files are refused, their entities are never expanded"
                    ),
                    remedy: None,
                });
            }
            out.push(Token::Other { range: pos..end });
            pos = end;
        } else if rest.starts_with("</") {
            let end = tag_end(bytes, pos)
                .ok_or_else(|| malformed(part, pos, "an end tag that does not end"))?;
            let name = source[pos + 2..end - 1].trim().to_string();
            out.push(Token::End {
                name,
                range: pos..end,
            });
            pos = end;
        } else {
            let end = tag_end(bytes, pos)
                .ok_or_else(|| malformed(part, pos, "a tag that does not end"))?;
            let inner = &source[pos + 1..end - 1];
            let empty = inner.ends_with('/');
            let name_end = inner
                .find(|c: char| c.is_whitespace() || c == '/')
                .unwrap_or(inner.len());
            let name = inner[..name_end].to_string();
            if name.is_empty() {
                return Err(malformed(part, pos, "a tag without a name"));
            }
            out.push(Token::Start {
                name,
                range: pos..end,
                empty,
            });
            pos = end;
        }
    }
    Ok(out)
}

/// The end (one past `>`) of the tag starting at `start`, quotes respected.
fn tag_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The index of the token that closes the element started at `tokens[start]` (itself for an
/// empty element; the last token when it is never closed).
pub(crate) fn matching_end(tokens: &[Token], start: usize) -> usize {
    let (name, empty) = match &tokens[start] {
        Token::Start { name, empty, .. } => (name.as_str(), *empty),
        _ => return start,
    };
    if empty {
        return start;
    }
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(start + 1) {
        match t {
            Token::Start {
                name: n,
                empty: false,
                ..
            } if n == name => depth += 1,
            Token::End { name: n, .. } if n == name => {
                if depth == 0 {
                    return j;
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    tokens.len() - 1
}

/// Character data with its references decoded: XML's five entities and character
/// references; any other entity is an error naming `part`.
pub(crate) fn decode(raw: &str, part: &str) -> Result<String> {
    if !raw.contains('&') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .find(';')
            .filter(|&e| e <= 12)
            .ok_or_else(|| Error::Input {
                source_name: part.to_string(),
                message: format!("an `&` that starts no reference in `{}`", excerpt(rest)),
                remedy: None,
            })?;
        let name = &after[..end];
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
            }
        };
        let c = c.ok_or_else(|| Error::Input {
            source_name: part.to_string(),
            message: format!(
                "the entity `&{name};` is not one of XML's own and is not expanded (files that need a DTD's entities are refused)"
            ),
            remedy: None,
        })?;
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn excerpt(s: &str) -> &str {
    let mut end = s.len().min(24);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The value of attribute `name` in the start tag `tag` (as written, references decoded).
pub(crate) fn attribute(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before_ok = at > 0 && rest.as_bytes()[at - 1].is_ascii_whitespace();
        let after = rest[at + name.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                let q = v.chars().next()?;
                if q == '"' || q == '\'' {
                    let end = v[1..].find(q)?;
                    return decode(&v[1..1 + end], "").ok();
                }
            }
        }
        rest = &rest[at + name.len()..];
    }
    None
}

/// The local part of a qualified name (`w:p` -> `p`).
pub(crate) fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Writes `text` as XML character data (`&`, `<`, `>` escaped).
pub(crate) fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_in_one_token() {
        let s = r#"<?xml version="1.0"?><!-- c --><a x="1>2"><b/>t &amp; u<![CDATA[<x>]]></a>"#;
        let t = tokens(s, "p").unwrap();
        let mut pos = 0;
        for tok in &t {
            assert_eq!(tok.range().start, pos);
            pos = tok.range().end;
        }
        assert_eq!(pos, s.len());
        assert!(matches!(&t[2], Token::Start { name, empty: false, .. } if name == "a"));
        assert!(matches!(&t[3], Token::Start { name, empty: true, .. } if name == "b"));
        assert_eq!(matching_end(&t, 2), t.len() - 1);
        assert_eq!(
            attribute(r#"<a x="1>2" y='&lt;'>"#, "y").as_deref(),
            Some("<")
        );
        assert_eq!(attribute(r#"<a xy="1" y="2">"#, "y").as_deref(), Some("2"));
    }

    #[test]
    fn entities_are_never_expanded() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><a>&lol;</a>"#;
        let e = tokens(bomb, "word/document.xml").unwrap_err().to_string();
        assert!(e.contains("internal subset"), "{e}");
        assert!(e.contains("word/document.xml"), "{e}");
        let e = decode("a &lol; b", "x.xml").unwrap_err().to_string();
        assert!(e.contains("&lol;"), "{e}");
        assert_eq!(decode("&#x41;&#66;&lt;&apos;", "x").unwrap(), "AB<'");
        assert!(tokens("<a><b", "x").is_err());
    }
}
