//! Fuzz target for input decoding (`tolk::input`): byte 0 chooses `--lossy` (bit 0) and the size
//! of the pieces a streaming decoder is fed (the other bits); the rest is the input file. Nothing
//! may panic. Whole and streamed decoding must agree: the same text when both succeed, and the
//! streamed decoder must fail when the whole one does (it may fail earlier, never later with
//! text the whole one refused). Decoded text has LF line ends, no NUL and no control characters
//! but TAB and LF (a U+FEFF after the byte-order mark is content, and kept); lossy decoding of an input that decodes strictly gives
//! the same text; valid UTF-8 made only of printable characters, spaces and LF comes back as it
//! went in.

#![no_main]

use libfuzzer_sys::fuzz_target;
// The capped allocator (tolk_fuzz::CappedAlloc) is linked only when the crate is used.
use tolk_fuzz as _;
use tolk::input::{decode, DecodeOptions, StreamDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let options = DecodeOptions::default().with_lossy(mode & 1 == 1);
    let piece = 1 + (mode >> 1) as usize;
    let whole = decode(bytes, "fuzzed.txt", &options);

    let mut streamed = String::new();
    let mut decoder = StreamDecoder::new("fuzzed.txt", &options);
    let mut result = Ok(());
    for chunk in bytes.chunks(piece) {
        result = decoder.push(chunk, &mut streamed);
        if result.is_err() {
            break;
        }
    }
    let streamed_ok = result.is_ok() && decoder.finish(&mut streamed).is_ok();

    match &whole {
        Ok(d) => {
            assert!(
                streamed_ok,
                "the streamed decoder refused what decode accepted"
            );
            assert_eq!(streamed, d.text, "streamed and whole text differ");
            check_text(&d.text);
            if !options.lossy {
                let lossy = decode(
                    bytes,
                    "fuzzed.txt",
                    &DecodeOptions::default().with_lossy(true),
                )
                .expect("lossy decoding refused what strict decoding accepted");
                assert_eq!(lossy.text, d.text);
                assert_eq!(lossy.replaced, 0);
            }
            if let Ok(s) = std::str::from_utf8(bytes) {
                let plain = !s.starts_with('\u{feff}')
                    && s.chars()
                        .all(|c| c == '\n' || c == ' ' || (!c.is_control() && c.is_alphanumeric()));
                if plain {
                    assert_eq!(d.text, s, "plain UTF-8 changed");
                }
            }
        }
        Err(_) => assert!(
            !streamed_ok,
            "the streamed decoder accepted what decode refused"
        ),
    }
});

fn check_text(text: &str) {
    for c in text.chars() {
        assert!(c != '\r' && c != '\0', "CR or NUL kept");
        assert!(
            c == '\t' || c == '\n' || !c.is_control(),
            "control character {c:?} kept"
        );
    }
}
