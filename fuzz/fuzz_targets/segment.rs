//! Fuzz target for `tolk::segment`: every mode and several length limits on arbitrary text must
//! give a lossless segmentation (see the module docs), and `split_long` must cut within its limit
//! without losing text.
//!
//! Input: the first byte is a parameter: its low six bits pick a length limit (1..=64
//! characters) used besides the fixed ones, bit 6 picks the language-independent rules (`zh`)
//! instead of the Dutch ones, its top bit turns metadata detection off; the rest is the text,
//! decoded from UTF-8 lossily.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tolk::segment::{split_long, Document, Language, SegmentKind, SegmentMode, Segmenter};
use tolk_fuzz::{is_space, split_param};

fuzz_target!(|data: &[u8]| {
    let (param, rest) = split_param(data);
    let text = String::from_utf8_lossy(rest);
    let text = text.as_ref();
    let limit = usize::from(param % 64) + 1;
    let metadata = param & 0x80 == 0;
    let language = if param & 0x40 == 0 {
        Language::dutch()
    } else {
        Language::new("zh").expect("a language code")
    };
    for mode in [
        SegmentMode::Sentences,
        SegmentMode::Lines,
        SegmentMode::Paragraphs,
    ] {
        for max_chars in [0, limit, 60, 400] {
            let segmenter = Segmenter::new()
                .with_mode(mode)
                .with_max_chars(max_chars)
                .with_metadata(metadata)
                .with_language(language.clone());
            let doc = segmenter.segment(text);
            if let Err(e) = check_document(text, &doc, max_chars) {
                panic!("{segmenter:?}: {e}\ninput: {text:?}\nsegments: {doc:#?}");
            }
        }
    }

    let measure = |s: &str| s.chars().count();
    let pieces = split_long(text, limit, measure);
    if let Err(e) = check_pieces(text, &pieces, limit) {
        panic!("split_long(limit {limit}): {e}\ninput: {text:?}\npieces: {pieces:?}");
    }

    // Document::split_long with the same measure, on a document that was not cut while
    // segmenting: the result must still be a lossless segmentation, within the limit.
    let mut doc = Segmenter::new().with_max_chars(0).segment(text);
    doc.split_long(limit, measure);
    if let Err(e) = check_document(text, &doc, limit) {
        panic!("Document::split_long(limit {limit}): {e}\ninput: {text:?}\nsegments: {doc:#?}");
    }
});

/// The invariants of the module docs: spans in order, non-empty, on character boundaries, not
/// overlapping, `text == input[span]`, trimmed; only white space (and a list item's marker)
/// between and around them; paragraphs never go back; translatable segments within `max_chars`
/// characters (0: no limit); and reassembling the segments' own text succeeds and keeps every
/// visible character.
fn check_document(text: &str, doc: &Document, max_chars: usize) -> Result<(), String> {
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
        if max_chars > 0 && seg.kind.is_translatable() && seg.text.chars().count() > max_chars {
            return Err(format!("segment {n}: over {max_chars} characters"));
        }
        prev_end = span.end;
        prev_paragraph = seg.paragraph;
    }
    if !text[prev_end..].chars().all(is_space) {
        return Err(format!("text lost at the end: {:?}", &text[prev_end..]));
    }
    let own: Vec<&str> = doc.translatable().map(|s| s.text.as_str()).collect();
    let rebuilt = doc
        .reassemble(&own)
        .map_err(|e| format!("reassembly with the segments' own text failed: {e}"))?;
    let visible = |s: &str| s.chars().filter(|&c| !is_space(c)).collect::<String>();
    if visible(&rebuilt) != visible(text) {
        return Err(format!(
            "identity reassembly changes the visible text: {rebuilt:?}"
        ));
    }
    // One translation too many must be refused, not ignored.
    let mut more = own.clone();
    more.push("x");
    if doc.reassemble(&more).is_ok() {
        return Err("reassembly accepted one translation too many".to_string());
    }
    Ok(())
}

/// `split_long`'s contract: pieces in order, non-empty, trimmed, within `limit` characters, and
/// only white space between and around them.
fn check_pieces(text: &str, pieces: &[std::ops::Range<usize>], limit: usize) -> Result<(), String> {
    let mut prev = 0;
    for p in pieces {
        if p.start < prev || p.end <= p.start || p.end > text.len() {
            return Err(format!("piece {p:?} out of order after {prev}"));
        }
        let (Some(gap), Some(piece)) = (text.get(prev..p.start), text.get(p.clone())) else {
            return Err(format!("piece {p:?} off a char boundary"));
        };
        if !gap.chars().all(is_space) {
            return Err(format!("text lost before {p:?}: {gap:?}"));
        }
        if piece.starts_with(is_space) || piece.ends_with(is_space) {
            return Err(format!("piece {p:?} not trimmed"));
        }
        if piece.chars().count() > limit {
            return Err(format!("piece {p:?} over {limit} characters"));
        }
        prev = p.end;
    }
    if !text[prev..].chars().all(is_space) {
        return Err(format!("text lost at the end: {:?}", &text[prev..]));
    }
    Ok(())
}
