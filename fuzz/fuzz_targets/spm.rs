//! Fuzz target for the SentencePiece reader: arbitrary bytes given to
//! `SentencePieceModel::from_bytes` must give `Ok` or `Err`, never a panic, an abort, a runaway
//! allocation or a hang. A model that loads must encode and decode without panicking, with every
//! id inside the model, and (without byte fallback) pieces that spell the normalised text.

#![no_main]

use libfuzzer_sys::fuzz_target;
// The capped allocator (tolk_fuzz::CappedAlloc) is linked only when the crate is used.
use tolk_fuzz as _;
use tolk::tokenizer::{PieceType, SentencePieceModel};

/// Short texts that reach the normaliser's odd corners: ligatures, full-width and combining
/// characters, emoji, NBSP and ideographic spaces, controls, runs of spaces.
const TEXTS: &[&str] = &[
    "Hallo wereld, ﬁets 😀 km/h",
    "",
    "  a  b\t\n ",
    "Ａ ① é e\u{301} \u{a0}\u{3000}x ǅ™\u{0}",
];

fuzz_target!(|data: &[u8]| {
    let Ok(model) = SentencePieceModel::from_bytes(data, "fuzzed.spm") else {
        return;
    };
    assert!(!model.is_empty(), "a model that loads has pieces");
    let unk = model.unk_id();
    assert!(
        (unk as usize) < model.len(),
        "unk id {unk} outside the model"
    );
    assert_eq!(model.piece_type(unk), Some(PieceType::Unknown));
    for text in TEXTS {
        let pieces = model.encode(text);
        let mut spelled = String::new();
        let mut bytes = false;
        for piece in &pieces {
            let id = piece.id;
            assert!((id as usize) < model.len(), "id {id} outside the model");
            let kind = model.piece_type(id);
            bytes |= kind == Some(PieceType::Byte);
            if piece.is_unknown() {
                assert_eq!(id, unk, "unknown text must carry the unknown id");
            } else {
                assert_eq!(
                    model.id_to_piece(id),
                    Some(piece.text.as_ref()),
                    "a vocabulary piece must be spelled as its entry"
                );
            }
            spelled.push_str(&piece.text);
        }
        let normalized = model.normalize(text);
        // Byte-fallback pieces spell bytes as `<0xNN>`, and a lossy conversion of malformed
        // normaliser output can differ piece by piece, so compare only in the plain case.
        if !bytes && !normalized.contains('\u{fffd}') {
            assert_eq!(
                spelled, normalized,
                "pieces of {text:?} do not spell its normal form"
            );
        }
        assert_eq!(
            model.encode_ids(text),
            pieces.iter().map(|p| p.id).collect::<Vec<_>>()
        );
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_ref()).collect();
        let _ = model.decode_pieces(&texts);
    }
    let _ = model.decode_pieces(&["▁Hallo", "<0x41>", "<unk>", "<s>", "</s>", ""]);
    for id in [0, 1, 2, unk, u32::MAX] {
        if let Some(piece) = model.id_to_piece(id) {
            assert!(
                model.piece_type(id).is_some(),
                "id {id} has a piece but no type"
            );
            let _ = model.decode_pieces(&[piece]);
        }
    }
});
