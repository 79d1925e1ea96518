"""Builds random models with the shapes of the larger translation models tolk runs, for the
forced-length speed harness (speed does not depend on the weights' values), in the Hugging Face
layout plus CTranslate2 conversions (float32 and int8):

- `nllb-600m`: facebook/nllb-200-distilled-600M's shape (M2M100 family: d_model 1024, 12 + 12
  pre-norm layers, 16 heads, ffn 4096, relu, 256,206-token vocabulary, scaled embeddings, tied
  output projection). The tokenizer is a small NLLB tokenizer (SentencePiece BPE trained here,
  with NLLB's 202 language codes) whose ids all fall inside the full-size vocabulary.
- `tc-big`: an OPUS-MT transformer-big shape (Marian: d_model 1024, 6 + 6 post-norm layers,
  16 heads, ffn 4096, relu, a 60,000-token shared vocabulary; the real tc-big models' vocabulary
  sizes vary around that), with a small SentencePiece model and vocab.json padded to the size.

usage: python tools/bench/make_shaped.py SHAPE OUT_DIR   (SHAPE: nllb-600m | tc-big)
Needs torch, transformers, sentencepiece and ctranslate2 (../shared/bench/README.md). Writes
OUT_DIR/hf, OUT_DIR/ct2-f32, OUT_DIR/ct2-int8. Time them with tools/bench/peers_shaped.py and
`tolk bench` (see docs/performance.md, "Larger shapes").
"""
import glob
import json
import os
import shutil
import sys

import sentencepiece as spm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def corpus(out):
    path = os.path.join(out, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        for p in [os.path.join(REPO, "tools", "fixtures", "corpus_nl_extra.txt"),
                  os.path.join(REPO, "tools", "fixtures", "corpus_en.txt"),
                  os.path.join(REPO, "..", "shared", "bench", "sentences_nl.txt")]:
            if os.path.exists(p):
                f.write(open(p, encoding="utf-8").read() + "\n")
        for p in sorted(glob.glob("/usr/share/common-licenses/*")):
            try:
                f.write(open(p, encoding="utf-8").read() + "\n")
            except (UnicodeDecodeError, IsADirectoryError):
                pass
    return path


def nllb(out, hf):
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES
    spm.SentencePieceTrainer.train(input=corpus(out), model_prefix=os.path.join(out, "sp"), vocab_size=3000,
                                   model_type="bpe", character_coverage=1.0, minloglevel=2)
    tokdir = os.path.join(out, "tok")
    os.makedirs(tokdir, exist_ok=True)
    shutil.copy(os.path.join(out, "sp.model"), os.path.join(tokdir, "sentencepiece.bpe.model"))
    json.dump({"tokenizer_class": "NllbTokenizer"}, open(os.path.join(tokdir, "tokenizer_config.json"), "w"))
    tok = NllbTokenizer.from_pretrained(tokdir)
    tok.add_tokens(list(FAIRSEQ_LANGUAGE_CODES), special_tokens=True)
    tok.src_lang = "nld_Latn"
    tok.save_pretrained(hf)
    torch.manual_seed(0)
    cfg = M2M100Config(vocab_size=256206, d_model=1024, encoder_layers=12, decoder_layers=12,
                       encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096,
                       decoder_ffn_dim=4096, activation_function="relu", scale_embedding=True,
                       max_position_embeddings=1024, pad_token_id=1, eos_token_id=2, bos_token_id=0,
                       decoder_start_token_id=2)
    model = M2M100ForConditionalGeneration(cfg).eval()
    model.generation_config.max_length = 200
    model.save_pretrained(hf)


def tc_big(out, hf):
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer
    spm.SentencePieceTrainer.train(input=corpus(out), model_prefix=os.path.join(out, "sp"), vocab_size=3000,
                                   model_type="unigram", character_coverage=1.0, unk_id=1, bos_id=-1, eos_id=0,
                                   pad_id=-1, unk_piece="<unk>", eos_piece="</s>", hard_vocab_limit=False,
                                   minloglevel=2)
    V = 60000
    pad = V - 1
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "sp.model"))
    pieces = ["</s>", "<unk>"] + [sp.id_to_piece(i) for i in range(sp.get_piece_size())
                                  if sp.id_to_piece(i) not in ("</s>", "<unk>")]
    pieces += [f"\u2581filler{i}" for i in range(V - 1 - len(pieces))] + ["<pad>"]
    vocab = {p: i for i, p in enumerate(pieces)}
    torch.manual_seed(0)
    cfg = MarianConfig(vocab_size=V, decoder_vocab_size=V, d_model=1024, encoder_layers=6, decoder_layers=6,
                       encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096,
                       decoder_ffn_dim=4096, activation_function="relu", max_position_embeddings=1024,
                       scale_embedding=True, pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
                       forced_eos_token_id=0, share_encoder_decoder_embeddings=True)
    model = MarianMTModel(cfg).eval()
    model.generation_config = GenerationConfig(bad_words_ids=[[pad]], bos_token_id=0, decoder_start_token_id=pad,
                                               eos_token_id=0, forced_eos_token_id=0, pad_token_id=pad, num_beams=4,
                                               max_length=512)
    model.save_pretrained(hf)
    shutil.copy(os.path.join(out, "sp.model"), os.path.join(hf, "source.spm"))
    shutil.copy(os.path.join(out, "sp.model"), os.path.join(hf, "target.spm"))
    json.dump(vocab, open(os.path.join(hf, "vocab.json"), "w", encoding="utf-8"), ensure_ascii=False)
    json.dump({"source_lang": "nl", "target_lang": "en", "separate_vocabs": False, "model_max_length": 512},
              open(os.path.join(hf, "tokenizer_config.json"), "w"))
    MarianTokenizer.from_pretrained(hf)  # must load


def main():
    shape, out = sys.argv[1], os.path.abspath(sys.argv[2])
    hf = os.path.join(out, "hf")
    os.makedirs(hf, exist_ok=True)
    {"nllb-600m": nllb, "tc-big": tc_big}[shape](out, hf)
    import ctranslate2.converters as conv
    for q, d in [(None, "ct2-f32"), ("int8", "ct2-int8")]:
        conv.TransformersConverter(hf).convert(os.path.join(out, d), quantization=q, force=True)
    print("model in", hf)


if __name__ == "__main__":
    main()
