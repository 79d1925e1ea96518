//! Subtitles (SubRip `.srt`, WebVTT `.vtt`): cue text translated, everything else kept byte
//! for byte (cue numbers and identifiers, timing lines with their settings, the `WEBVTT`
//! header, `NOTE`, `STYLE` and `REGION` blocks).
//!
//! A sentence often runs over several cues. Consecutive cues are read as one unit until a cue
//! ends a sentence (at most [`MAX_CUES`] together), so the model sees whole sentences; what
//! lies between two cues (the blank line, the next number and timing line) is a mark in that
//! unit, put back after the target word aligned with the last source word before it. So the
//! translation is split over the same cues at the aligned words, and each cue's lines are then
//! balanced again (as many lines as the cue had, more where a line would pass
//! [`LINE_CHARS`] characters). Inline tags (`<i>`, `<b>`, `<font>`, WebVTT's `<c.x>` and
//! `<v Name>`) are spans like HTML's; WebVTT timestamps and SubRip's `{\an8}` are marks.

use std::ops::Range;

use super::markup::{Escape, Role, Unit, UnitBuilder};
use super::office::{marked, Marked, RunPiece, Runs};
use crate::error::Result;

/// The most cues read as one unit.
pub(crate) const MAX_CUES: usize = 8;

/// Characters a subtitle line holds before another line is added.
pub(crate) const LINE_CHARS: usize = 42;

/// The most lines a cue's text is broken into.
const MAX_LINES: usize = 4;

/// Cues with more words than this are broken greedily, not by weighing every break.
const MAX_BALANCED_WORDS: usize = 120;

/// A cue's text cut into words at spaces outside tags.
fn words_of(text: &str) -> Vec<&str> {
    let mut words: Vec<&str> = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '<' | '{' => depth += 1,
            '>' | '}' if depth > 0 => depth -= 1,
            ' ' if depth == 0 => {
                if i > start {
                    words.push(&text[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        words.push(&text[start..]);
    }
    words
}

/// The byte ranges of `source`'s lines (without their line ends).
fn lines(source: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in source.bytes().enumerate() {
        if b == b'\n' {
            let end = if i > start && source.as_bytes()[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            out.push(start..end);
            start = i + 1;
        }
    }
    if start < source.len() {
        out.push(start..source.len());
    }
    out
}

/// The cues' text ranges, and whether a block that is not a cue comes before each.
fn cues(source: &str, vtt: bool) -> Vec<(Range<usize>, bool)> {
    let lines = lines(source);
    let mut out = Vec::new();
    let mut i = 0;
    let mut broken = true;
    let mut first = true;
    while i < lines.len() {
        if source[lines[i].clone()].trim().is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && !source[lines[i].clone()].trim().is_empty() {
            i += 1;
        }
        let block = &lines[start..i];
        let head = source[block[0].clone()].trim_start_matches('\u{feff}');
        let kept = vtt
            && ((first && head.starts_with("WEBVTT"))
                || ["NOTE", "STYLE", "REGION"].iter().any(|k| {
                    head == *k
                        || head.starts_with(&format!("{k} "))
                        || head.starts_with(&format!("{k}\t"))
                }));
        first = false;
        let timing = block
            .iter()
            .take(2)
            .position(|l| source[l.clone()].contains("-->"));
        match (kept, timing) {
            (false, Some(t)) if t + 1 < block.len() => {
                let text = block[t + 1].start..block[block.len() - 1].end;
                out.push((text, broken));
                broken = false;
            }
            _ => broken = true,
        }
    }
    out
}

/// The bytes at the start and at the end of a cue's text that frame it all: a tag opened at
/// its start and closed at its end or never (`<v Anna>`, `<i>...</i>` around the whole cue).
/// They stay with the cue, around whatever part of the translation it gets.
fn frame(text: &str) -> (usize, usize) {
    let (mut lead, mut trail) = (0, 0);
    loop {
        let rest = &text[lead..text.len() - trail];
        let Some(e) = rest.strip_prefix('<').and_then(|r| r.find('>')) else {
            break;
        };
        let tag = &rest[1..=e];
        if tag.starts_with('/') || tag.starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '.')
            .next()
            .unwrap_or("");
        let close = format!("</{name}>");
        let inner = &rest[e + 2..];
        let body = inner.trim_end();
        if let Some(before) = body.strip_suffix(close.as_str()) {
            if before.contains(close.as_str()) {
                break;
            }
            lead += e + 2;
            trail += inner.len() - before.len();
        } else if !inner.contains(close.as_str()) {
            lead += e + 2;
        } else {
            break;
        }
        if lead + trail >= text.len() {
            break;
        }
    }
    if lead + trail >= text.len() {
        (0, 0)
    } else {
        (lead, trail)
    }
}

/// Whether a cue's visible text ends a sentence.
fn ends_sentence(text: &str) -> bool {
    let visible = visible(text);
    let t = visible
        .trim_end()
        .trim_end_matches(['"', '\'', '”', '’', ')', ']', '»', '♪', ' ']);
    t.ends_with(['.', '!', '?', '…', '。', '！', '？'])
}

/// Text without its tags.
fn visible(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '<' | '{' => depth += 1,
            '>' | '}' if depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// WebVTT's character references decoded.
fn decode_vtt(raw: &str) -> String {
    if !raw.contains('&') {
        return raw.to_string();
    }
    let mut out = raw.to_string();
    for (e, c) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&nbsp;", "\u{a0}"),
        ("&lrm;", "\u{200e}"),
        ("&rlm;", "\u{200f}"),
        ("&amp;", "&"),
    ] {
        out = out.replace(e, c);
    }
    out
}

/// The units of a subtitle file; the marks between cues are recorded in `runs`.
pub(crate) fn parse(source: &str, vtt: bool, name: &str, runs: &mut Runs) -> Result<Vec<Unit>> {
    if vtt && !source.trim_start_matches('\u{feff}').starts_with("WEBVTT") {
        return Err(crate::error::Error::Input {
            source_name: name.to_string(),
            message: "a WebVTT file starts with `WEBVTT`; this one does not (is it SubRip? name it .srt or give --input-format srt)".to_string(),
            remedy: None,
        });
    }
    let cues = cues(source, vtt);
    let escape = if vtt { Escape::Xml } else { Escape::Plain };
    let mut units = Vec::new();
    let mut b = UnitBuilder::default();
    let mut count = 0;
    let mut prev_end: Option<usize> = None;
    for (text, broken) in cues {
        let (lead, trail) = frame(&source[text.clone()]);
        let text = text.start + lead..text.end - trail;
        if broken || count == MAX_CUES {
            if let Some(u) = std::mem::take(&mut b).finish(Role::Block, escape) {
                units.push(u);
            }
            count = 0;
            prev_end = None;
        }
        if let Some(end) = prev_end {
            // What lies between the two cues' texts: a mark.
            let sep = end..text.start;
            runs.pieces.insert(sep.start, RunPiece::Cue);
            b.text(" ", 0..0, " ");
            b.opaque(sep, "");
        }
        cue_text(source, text.clone(), vtt, &mut b);
        count += 1;
        prev_end = Some(text.end);
        if ends_sentence(&source[text.clone()]) {
            if let Some(u) = std::mem::take(&mut b).finish(Role::Block, escape) {
                units.push(u);
            }
            count = 0;
            prev_end = None;
        }
    }
    if let Some(u) = b.finish(Role::Block, escape) {
        units.push(u);
    }
    Ok(units)
}

/// One cue's text into the unit: text, tags as spans, timestamps and `{...}` as marks; spans
/// left open close at the cue's end.
fn cue_text(source: &str, range: Range<usize>, vtt: bool, b: &mut UnitBuilder) {
    let text = &source[range.clone()];
    let mut open = 0usize;
    let mut pos = 0;
    let at = |p: usize| range.start + p;
    while pos < text.len() {
        let rest = &text[pos..];
        let close_char = match rest.as_bytes()[0] {
            b'<' => Some('>'),
            b'{' if !vtt && rest.starts_with("{\\") => Some('}'),
            _ => None,
        };
        if let Some(cc) = close_char {
            if let Some(e) = rest.find(cc) {
                let tag = &rest[..=e];
                let r = at(pos)..at(pos + e + 1);
                let inner = &tag[1..tag.len() - 1];
                if cc == '}' || inner.starts_with(|c: char| c.is_ascii_digit()) {
                    b.opaque(r, "");
                } else if inner.starts_with('/') {
                    if open > 0 && b.close(r.clone()) {
                        open -= 1;
                    } else {
                        b.opaque(r, "");
                    }
                } else if inner.ends_with('/') {
                    b.opaque(r, "");
                } else {
                    b.open(r);
                    open += 1;
                }
                pos += e + 1;
                continue;
            }
        }
        let first = rest.chars().next().map_or(1, char::len_utf8);
        let next = rest[first..]
            .find(['<', '{'])
            .map_or(text.len(), |n| pos + first + n);
        let raw = &text[pos..next];
        let decoded = if vtt {
            decode_vtt(raw)
        } else {
            raw.to_string()
        };
        b.text(&decoded, at(pos)..at(next), raw);
        pos = next;
    }
    for _ in 0..open {
        b.close(range.end..range.end);
    }
}

/// A unit's rendering cut at the marks between cues: each cue's text, what lies between them.
fn split_cues(rendered: &str, runs: &Runs) -> Option<(Vec<String>, Vec<String>)> {
    let mut cues: Vec<String> = vec![String::new()];
    let mut seps: Vec<String> = Vec::new();
    for piece in marked(rendered) {
        match piece {
            Marked::Markup { pos, body } if runs.pieces.get(&pos) == Some(&RunPiece::Cue) => {
                seps.push(body.to_string());
                cues.push(String::new());
            }
            Marked::Markup { body, .. } | Marked::Text(body) => cues.last_mut()?.push_str(body),
        }
    }
    Some((cues, seps))
}

/// The lines each cue of `unit` had.
fn lines_had(unit: &Unit, source: &str, runs: &Runs) -> Vec<usize> {
    let mut had = Vec::new();
    let mut from = unit.range.start;
    for s in unit
        .spans
        .iter()
        .filter(|s| runs.pieces.get(&s.open.start) == Some(&RunPiece::Cue))
    {
        had.push(source[from..s.open.start].lines().count().max(1));
        from = s.open.end;
    }
    had.push(source[from..unit.range.end].lines().count().max(1));
    had
}

/// Cues and what lies between them, written: each cue on balanced lines.
fn join_cues(cues: &[String], seps: &[String], had: &[usize], source: &str) -> String {
    let newline = if source.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut out = String::new();
    for (k, cue) in cues.iter().enumerate() {
        out.push_str(&balance(
            cue.trim(),
            had.get(k).copied().unwrap_or(1),
            newline,
        ));
        if let Some(s) = seps.get(k) {
            out.push_str(s);
        }
    }
    out
}

/// A unit's rendering made into cues again: split at the marks between cues, each cue's text
/// on balanced lines; `None` when a cue would be left without text.
pub(crate) fn write_cues(rendered: &str, unit: &Unit, source: &str, runs: &Runs) -> Option<String> {
    let (cues, seps) = split_cues(rendered, runs)?;
    let had = lines_had(unit, source, runs);
    if had.len() != cues.len() || cues.iter().any(|c| visible(c).trim().is_empty()) {
        return None;
    }
    Some(join_cues(&cues, &seps, &had, source))
}

/// The last resort when the placed marks leave a cue empty (a translation with fewer words
/// than the unit has cues): the words dealt out over the cues in order, as evenly as they go;
/// a cue left without any gets `…`.
pub(crate) fn spread(rendered: &str, unit: &Unit, source: &str, runs: &Runs) -> String {
    let Some((cues, seps)) = split_cues(rendered, runs) else {
        return strip_marks(rendered);
    };
    let all = cues.join(" ");
    let words = words_of(all.trim());
    let n = cues.len();
    let m = words.len();
    let dealt: Vec<String> = (0..n)
        .map(|k| {
            let (a, b) = if m >= n {
                (k * m / n, (k + 1) * m / n)
            } else {
                (k.min(m), (k + 1).min(m))
            };
            let cue = words[a..b].join(" ");
            if visible(&cue).trim().is_empty() {
                "…".to_string()
            } else {
                cue
            }
        })
        .collect();
    join_cues(&dealt, &seps, &lines_had(unit, source, runs), source)
}

/// The markers taken out, the markup kept.
pub(crate) fn strip_marks(rendered: &str) -> String {
    marked(rendered)
        .into_iter()
        .map(|p| match p {
            Marked::Text(t) | Marked::Markup { body: t, .. } => t,
        })
        .collect()
}

/// A cue's text on `lines` lines (more where a line would pass [`LINE_CHARS`]), broken at
/// spaces outside tags so that the longest line is as short as it can be.
fn balance(text: &str, lines: usize, newline: &str) -> String {
    let words = words_of(text);
    let len: Vec<usize> = words.iter().map(|w| visible(w).chars().count()).collect();
    let total: usize = len.iter().sum::<usize>() + len.len().saturating_sub(1);
    let wanted = lines
        .max(total.div_ceil(LINE_CHARS))
        .min(lines.max(2))
        .min(MAX_LINES)
        .min(words.len())
        .max(1);
    if wanted == 1 {
        return words.join(" ");
    }
    if words.len() > MAX_BALANCED_WORDS {
        // Too many words to weigh every break: lines filled in turn to an even share.
        let share = total.div_ceil(wanted);
        let mut out: Vec<String> = vec![String::new()];
        let mut width = 0;
        for (w, l) in words.iter().zip(&len) {
            if width > 0 && width + 1 + l > share && out.len() < wanted {
                out.push(String::new());
                width = 0;
            }
            let line = out.last_mut().expect("a line");
            if width > 0 {
                line.push(' ');
                width += 1;
            }
            line.push_str(w);
            width += l;
        }
        return out.join(newline);
    }
    // Fewest-longest-line breaks, by dynamic programming over (words used, lines made).
    let n = words.len();
    let mut prefix = vec![0usize; n + 1];
    for (k, l) in len.iter().enumerate() {
        prefix[k + 1] = prefix[k] + l;
    }
    let width = |a: usize, b: usize| prefix[b] - prefix[a] + (b - a - 1);
    let inf = usize::MAX;
    let mut best = vec![vec![inf; wanted + 1]; n + 1];
    let mut from = vec![vec![0usize; wanted + 1]; n + 1];
    best[0][0] = 0;
    for k in 1..=wanted {
        for j in k..=n {
            for i in (k - 1)..j {
                if best[i][k - 1] == inf {
                    continue;
                }
                let cost = best[i][k - 1].max(width(i, j));
                if cost < best[j][k] {
                    best[j][k] = cost;
                    from[j][k] = i;
                }
            }
        }
    }
    let mut cuts = Vec::new();
    let mut j = n;
    for k in (1..=wanted).rev() {
        let i = from[j][k];
        cuts.push(words[i..j].join(" "));
        j = i;
    }
    cuts.reverse();
    cuts.join(newline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cues_are_broken_quickly_into_few_lines() {
        let many = "ja ".repeat(400);
        let out = balance(many.trim(), 400, "\n");
        assert_eq!(out.lines().count(), MAX_LINES);
        assert_eq!(out.split_whitespace().count(), 400);
    }

    #[test]
    fn lines_are_balanced_outside_tags() {
        assert_eq!(balance("a b c d", 2, "\n"), "a b\nc d");
        assert_eq!(
            balance("<i>one two</i> three", 2, "\n"),
            "<i>one two</i>\nthree"
        );
        assert_eq!(balance("short", 2, "\n"), "short");
        let long = "word ".repeat(20);
        assert_eq!(balance(long.trim(), 1, "\n").lines().count(), 2);
    }

    #[test]
    fn tags_around_a_whole_cue_frame_it() {
        assert_eq!(frame("<v Anna>Hoi daar"), (8, 0));
        assert_eq!(frame("<i>Hoi daar</i>"), (3, 4));
        assert_eq!(frame("<v Anna><i>Hoi</i>"), (11, 4));
        assert_eq!(frame("<i>Hoi</i> en <i>daar</i>"), (0, 0));
        assert_eq!(frame("Hoi <b>daar</b>"), (0, 0));
        assert_eq!(frame("<i></i>"), (0, 0));
    }

    #[test]
    fn cue_blocks_are_found() {
        let vtt = "WEBVTT\n\nNOTE a note --\n\n1\n00:00:01.000 --> 00:00:02.000 align:start\nHallo <i>daar</i>,\n\n00:00:03.000 --> 00:00:04.000\nhoe gaat het?\n";
        let c = cues(vtt, true);
        assert_eq!(c.len(), 2);
        assert_eq!(&vtt[c[0].0.clone()], "Hallo <i>daar</i>,");
        assert!(c[0].1 && !c[1].1);
        let mut runs = Runs::default();
        let units = parse(vtt, true, "t.vtt", &mut runs).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].text, "Hallo daar, hoe gaat het?");
        assert!(parse(
            "1\n00:00:01,000 --> 00:00:02,000\nx\n",
            true,
            "t",
            &mut runs
        )
        .is_err());
    }
}
