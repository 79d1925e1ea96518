//! Fuzz target for the Marian tokenizer round trip, on the tokenizer of
//! `tests/fixtures/marian-tiny` (an `nmt_nfkc` SentencePiece model).
//!
//! Every text must encode (ids inside the vocabulary, ending with `</s>`) and decode without
//! failing. On text over the alphabet for which the round trip is exact, `decode(encode(x))`
//! must be `x` up to the normalisation `MarianTokenizer::decode` documents: runs of spaces
//! reduced to one and surrounding white space removed. That alphabet is the ASCII characters
//! that are single pieces of both `source.spm` and `vocab.json` (NFKC leaves ASCII alone),
//! without `<` and `>`, which could spell added tokens or a `>>xx<<` language code.
//!
//! Input: the first byte chooses the mode. Even: the rest is the text (lossy UTF-8), checked
//! for success only. Odd: each remaining byte picks a character of the alphabet or a space,
//! and the round trip is checked exactly.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tolk::tokenizer::MarianTokenizer;
use tolk_fuzz::split_param;

struct Fixture {
    tok: MarianTokenizer,
    alphabet: Vec<char>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/marian-tiny");
        let tok = MarianTokenizer::from_dir(&dir).expect("the marian-tiny fixture loads");
        let spm = tok.source_model();
        let alphabet: Vec<char> = (0x21u8..0x7f)
            .map(char::from)
            .filter(|c| !matches!(c, '<' | '>'))
            .filter(|c| {
                let s = c.to_string();
                spm.piece_to_id(&s) != spm.unk_id() && tok.token_to_id(&s).is_some()
            })
            .collect();
        assert!(alphabet.len() > 20, "alphabet too small: {alphabet:?}");
        Fixture { tok, alphabet }
    })
}

fuzz_target!(|data: &[u8]| {
    let Fixture { tok, alphabet } = fixture();
    let (mode, rest) = split_param(data);
    let text: String = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        rest.iter()
            .map(|&b| {
                alphabet
                    .get(usize::from(b) % (alphabet.len() + 1))
                    .copied()
                    .unwrap_or(' ')
            })
            .collect()
    };

    let ids = tok.encode(&text).expect("encoding valid UTF-8 never fails");
    assert_eq!(
        ids.last().copied(),
        Some(tok.eos_id()),
        "ids must end with </s>"
    );
    let size = tok.len_with_added_tokens();
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= size) {
        panic!("id {bad} outside the vocabulary of {size} for {text:?}");
    }
    let back = tok
        .decode(&ids)
        .expect("decoding ids from encode never fails");

    if mode % 2 == 1 {
        let want = text
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(back, want, "round trip of {text:?} (ids {ids:?})");
        // Decoding its own output again is stable.
        let again = tok
            .decode(&tok.encode(&back).expect("encode"))
            .expect("decode");
        assert_eq!(again, back, "second round trip of {text:?}");
    }
});
