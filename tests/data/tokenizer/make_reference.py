#!/usr/bin/env python3
"""Builds the tokenizer test data under tests/data/tokenizer/ and records the reference outputs.

Run from the repository root with the fixtures venv (Python 3.11, transformers 5.24.0,
sentencepiece 0.2.3, sacremoses 0.2.0):

    /work/.venv-fixtures/bin/python tests/data/tokenizer/make_reference.py

It (1) trains small SentencePiece unigram models on corpus.nl.txt / corpus.en.txt (written for
these tests) with several normaliser and vocabulary settings (spm/*.model), (2) assembles Marian
model directories from them the way Helsinki-NLP's opus-mt repositories look (models/*/: source.spm,
target.spm, vocab.json with `</s>`=0, `<unk>`=1, ..., `<pad>` last, tokenizer_config.json), and
(3) writes reference.json: for every input text, the pieces and ids of each raw SentencePiece model
(`SentencePieceProcessor.encode(text, out_type=str/int)`), `decode_pieces` of piece lists, the
`MarianTokenizer.from_pretrained(dir)(text)["input_ids"]` and `decode(ids, skip_special_tokens=True)`
of each model directory, and sacremoses' `MosesPunctNormalizer(lang).normalize(text)`.

Training is not bit-for-bit reproducible across sentencepiece versions: the committed .model files
are the source of truth, and re-running the script retrains them (pass --keep-models to record the
outputs of the committed models without retraining; the model directories are always
rebuilt from spm/).
"""

import io
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata

import sacremoses
import sentencepiece as spm
import transformers
from sacremoses import MosesPunctNormalizer
from transformers import MarianTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
SPM_DIR = os.path.join(HERE, "spm")
MODELS_DIR = os.path.join(HERE, "models")

# A custom normalisation rule set (small, unlike nmt_nfkc's 240 kB charsmap) that exercises the
# double-array matcher: one-to-many, many-to-one (longest match), deletions, spaces.
CUSTOM_RULES = """\
FB01\t66 69
FB02\t66 6C
FF21\t41
FF41\t61
FF10\t30
FF11\t31
A0\t20
2009\t20
3000\t20
9\t20
A\t20
201C\t22
201D\t22
201E\t22
2018\t27
2019\t27
2014\t2D
65 301\tE9
65 300\tE8
6F 308\tF6
69 308\tEF
AD\t
200B\t
2026\t2E 2E 2E
BD\t31 2044 32
"""

# Denormalisation rules for the target model of the `separate` directory (applied by
# SentencePiece's decoder).
DENORM_RULES = """\
27\t2019
"""


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def seed_lines():
    path = os.path.join(HERE, "..", "..", "..", "..", "..", "shared", "seed")
    out = []
    for cand in [os.environ.get("TOLK_SEED_DIR", ""), "/work/shared/seed"]:
        if cand and os.path.isdir(cand):
            for name in sorted(os.listdir(cand)):
                if name.endswith(".txt"):
                    out += lines(os.path.join(cand, name))
            break
    return out


def train(name, sentences, **kw):
    tmp = tempfile.mkdtemp()
    rules = kw.pop("rules", None)
    denorm = kw.pop("denorm", None)
    if rules is not None:
        p = os.path.join(tmp, "rules.tsv")
        with open(p, "w", encoding="utf-8") as f:
            f.write(rules)
        kw["normalization_rule_tsv"] = p
    if denorm is not None:
        p = os.path.join(tmp, "denorm.tsv")
        with open(p, "w", encoding="utf-8") as f:
            f.write(denorm)
        kw["denormalization_rule_tsv"] = p
    model = io.BytesIO()
    args = dict(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="unigram",
        character_coverage=1.0,
        num_threads=1,
        shuffle_input_sentence=False,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    args.update(kw)
    spm.SentencePieceTrainer.train(**args)
    shutil.rmtree(tmp)
    with open(os.path.join(SPM_DIR, name + ".model"), "wb") as f:
        f.write(model.getvalue())


def edit(src, name, unused=(), **normalizer_fields):
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    with open(os.path.join(SPM_DIR, src + ".model"), "rb") as f:
        m.ParseFromString(f.read())
    for k, v in normalizer_fields.items():
        setattr(m.normalizer_spec, k, v)
    for p in m.pieces:
        if p.piece in unused:
            p.type = pb.ModelProto.SentencePiece.UNUSED
    with open(os.path.join(SPM_DIR, name + ".model"), "wb") as f:
        f.write(m.SerializeToString())


def train_all():
    os.makedirs(SPM_DIR, exist_ok=True)
    nl = lines(os.path.join(HERE, "corpus.nl.txt")) + seed_lines()
    en = lines(os.path.join(HERE, "corpus.en.txt"))
    # The real opus-mt models: nmt_nfkc, defaults everywhere.
    train("nl_nfkc", nl, vocab_size=700)
    # Byte fallback: unknown characters become <0xXX> pieces.
    train("nl_bytefb", nl, vocab_size=600, byte_fallback=True, normalization_rule_name="identity")
    # User-defined symbols bypass the normaliser and always win; control symbols never match.
    train(
        "nl_userdef",
        nl,
        vocab_size=600,
        rules=CUSTOM_RULES,
        user_defined_symbols=["<eop>", "ﬁ", "km/h", "@@", "▁NOS", "🙂", ">>nl<<"],
        control_symbols=["<ctl>", "<eod>"],
    )
    # No normalisation at all.
    train("nl_identity", nl, vocab_size=600, normalization_rule_name="identity")
    # Whitespace kept as it is: no dummy prefix, no removal of extra whitespace.
    train(
        "nl_keepws",
        nl,
        vocab_size=600,
        rules=CUSTOM_RULES,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
    )
    # Whitespace as a suffix.
    train(
        "nl_suffix",
        nl,
        vocab_size=500,
        normalization_rule_name="identity",
        treat_whitespace_as_suffix=True,
    )
    # Normaliser switches the trainer refuses (unigram needs escaped whitespace) or that it
    # does not combine this way, set by editing the protobuf of nl_identity.
    edit("nl_identity", "nl_noescape", add_dummy_prefix=True, remove_extra_whitespaces=False,
         escape_whitespaces=False)
    edit("nl_identity", "nl_dummy_keepws", add_dummy_prefix=True, remove_extra_whitespaces=False)
    # UNUSED pieces exist in the vocabulary but are never produced.
    edit("nl_identity", "nl_unused", unused=["▁de", "en", "▁het", "e", "▁van", "ij", "▁"])
    # Target (English) models; decoding uses them only with separate_vocabs.
    train("en_identity", en, vocab_size=400, normalization_rule_name="identity")
    train("en_denorm", en, vocab_size=400, normalization_rule_name="identity", denorm=DENORM_RULES)


def pieces_of(path):
    sp = spm.SentencePieceProcessor(model_file=path)
    return sp, [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def marian_vocab(src_path, tgt_path, drop=(), extra=()):
    """Helsinki-NLP layout: </s>=0, <unk>=1, the pieces of both models, <pad> last."""
    vocab = {"</s>": 0, "<unk>": 1}
    for path in [src_path, tgt_path]:
        if path is None:
            continue
        sp, pieces = pieces_of(path)
        for i, p in enumerate(pieces):
            if sp.is_control(i) or sp.is_unknown(i):
                continue
            if p in drop or p in vocab:
                continue
            vocab[p] = len(vocab)
    for p in extra:
        if p not in vocab:
            vocab[p] = len(vocab)
    vocab["<pad>"] = len(vocab)
    return vocab


DIRS = {
    # name: (source model, target model, tokenizer_config, vocab options)
    "base": ("nl_nfkc", "en_identity", {"source_lang": "nl", "target_lang": "en"}, {"drop": ["▁wereld"]}),
    "bytefb": ("nl_bytefb", "en_identity", {"source_lang": "nl", "target_lang": "en"}, {}),
    "userdef": (
        "nl_userdef",
        "en_identity",
        {"source_lang": "nl", "target_lang": "en", "additional_special_tokens": ["<eop>", "<eod>"]},
        {"extra": [">>fra<<", ">>en<<"]},
    ),
    "identity": ("nl_identity", "en_identity", {"source_lang": "nl", "target_lang": "en"}, {}),
    "keepws": ("nl_keepws", "en_identity", {"source_lang": "nl", "target_lang": "en", "model_max_length": 64}, {}),
    "suffix": ("nl_suffix", "en_identity", {}, {}),
    "separate": (
        "nl_nfkc",
        "en_denorm",
        {
            "source_lang": "nl",
            "target_lang": "en",
            "separate_vocabs": True,
            "clean_up_tokenization_spaces": True,
        },
        {},
    ),
}


def build_dirs():
    os.makedirs(MODELS_DIR, exist_ok=True)
    for name, (src, tgt, config, vopts) in DIRS.items():
        d = os.path.join(MODELS_DIR, name)
        os.makedirs(d, exist_ok=True)
        src_path = os.path.join(SPM_DIR, src + ".model")
        tgt_path = os.path.join(SPM_DIR, tgt + ".model")
        shutil.copyfile(src_path, os.path.join(d, "source.spm"))
        shutil.copyfile(tgt_path, os.path.join(d, "target.spm"))
        if config.get("separate_vocabs"):
            vocab = marian_vocab(src_path, None, **vopts)
            target_vocab = marian_vocab(tgt_path, None)
            with open(os.path.join(d, "target_vocab.json"), "w", encoding="utf-8") as f:
                json.dump(target_vocab, f, ensure_ascii=False, indent=2)
        else:
            vocab = marian_vocab(src_path, tgt_path, **vopts)
        with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False, indent=2)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=2)
    # The legacy special_tokens_map.json of the Helsinki-NLP repositories.
    with open(os.path.join(MODELS_DIR, "base", "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, f)
    # Legacy files: special_tokens_map.json with an extra special token, added_tokens.json.
    legacy = os.path.join(MODELS_DIR, "legacy")
    shutil.rmtree(legacy, ignore_errors=True)
    shutil.copytree(os.path.join(MODELS_DIR, "base"), legacy)
    with open(os.path.join(legacy, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "additional_special_tokens": ["<eod>"]},
            f,
        )
    with open(os.path.join(legacy, "vocab.json"), encoding="utf-8") as f:
        n = len(json.load(f))
    with open(os.path.join(legacy, "added_tokens.json"), "w", encoding="utf-8") as f:
        json.dump({"<extra>": n}, f)
    # A directory as transformers 5.24 saves it (added_tokens_decoder in the config), edited to
    # give <eop> lstrip/rstrip and to add a non-special added token.
    saved = os.path.join(MODELS_DIR, "saved")
    shutil.rmtree(saved, ignore_errors=True)
    MarianTokenizer.from_pretrained(os.path.join(MODELS_DIR, "userdef")).save_pretrained(saved)
    path = os.path.join(saved, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    for tok in config["added_tokens_decoder"].values():
        if tok["content"] == "<eop>":
            tok["lstrip"] = True
            tok["rstrip"] = True
    config["added_tokens_decoder"]["848"] = {
        "content": "NOS-nieuws",
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
        "special": False,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)


HANDWRITTEN = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    " \n\t ",
    "a",
    "Hallo wereld!",
    "  Hallo   wereld  ",
    "Hallo\twereld\nen\r\nverder",
    "De café's in Den Haag.",
    "coördinatie, reünie, geëist, financiële, één, cocaïne",
    "ﬁets ﬂink ﬁnale",
    "ＡＢＣ ａｂｃ ０１２３ Ｈａｌｌｏ",
    "prijs:\u00a0€\u00a02,10 en 5\u00a0%",
    "a\u2009b\u2002c\u3000d\u200be\u00adf",
    "„Dit is een citaat”, zei hij. “Ja” en ‘nee’ en 'ok' en \"goed\".",
    "1995–2000 — een periode…",
    "e\u0301 o\u0308 i\u0308 a\u030a n\u0303",
    "Hij zei: «Bonjour» en »Guten Tag«.",
    "De prijs is ½ euro of ¼ of ¾.",
    "😀 🙂 👍🏽 🇳🇱 ❤️ ✓",
    "Emoji in een woord: ko😀ffie en thee🙂.",
    "Dit is </s> midden in de tekst.",
    "</s>",
    "<unk>",
    "<pad>",
    "</s></s><unk><pad>",
    "a</s>b<unk>c<pad>d",
    " </s> ",
    "<s> en </s2> en <unk and <pad",
    ">>nl<< Goedemorgen allemaal.",
    ">>fra<< Bonjour",
    ">>en<<",
    ">>nl<<",
    ">>nl<<>>en<< dubbel",
    " >>nl<< met spatie ervoor",
    ">>onbekend<< tekst",
    ">>geen einde",
    "a >>nl<< b",
    "</s>>>nl<< na eos",
    "2024 12 345 6.789 1,5 0,001 100% 3/4 42e",
    "0123456789" * 3,
    "Kindercarnavalsoptochtvoorbereidingswerkzaamhedenplan",
    "a" * 300,
    "ab" * 200 + " " + "xyz" * 100,
    "Москва и Київ, 東京 en Ελλάδα, עברית, العربية, हिन्दी, ไทย",
    "Mixed: Amsterdam東京Rotterdam",
    "km/h en km/ h en KM/H en @@ en @@@@ en <eop> en <eod> en <ctl>",
    "NOS NOS-nieuws ▁NOS",
    "▁ ▁▁ a▁b ▁start",
    "tab\tin\tmidden",
    "\u0000nul\u0001een\u007fdel",
    "\u200e\u200f\u202a\u2066 bidi",
    "\ufeffBOM aan het begin",
    "\ufffd vervangingsteken",
    "line\u2028separator\u2029para",
    "x\u0085y",
    "ǅ ǈ ǋ Ǳ ß ẞ İ ı",
    "ÀÁÂÃÄÅ àáâãäå ÇÑ çñ",
    "™ ℃ № ㎏ ㈱ ① Ⅻ",
    "\u0130stanbul",
    "𝐀𝐁𝐂 𝔸𝔹 𝟘𝟙",
    "Wat?! Echt... (ja) [nee] {misschien} <tag>",
    "e-mail: info@nos.nl, https://nos.nl/artikel/123?x=1&y=2",
    "`backtick` en ''dubbel'' en ``latex''",
    "1 % 2 %  en ( haakje ) . en ) , en ) !",
    "nº\u00a05 en 20\u00a0ºC en 3\u00a0cm en wat\u00a0? en ja\u00a0! en a\u00a0; en b,\u00a0c",
    "1\u00a0000\u00a0000 euro",
    "\u00a0«\u00a0citaat\u00a0»\u00a0",
    "´accent´ en ´´",
    "Rock ‘n’ roll en it’s en ‘a’",
    "a <eop> b  <eop>c\t<eop>\n d",
    "NOS-nieuws en NOS-nieuwsdienst",
    "een <extra> token en <eod> en<extra><eod>x",
    "<</s> <un<unk> </s</s> <pa<pad>d <<unk>> <eo<eod> <eop<eod> <eod<eop>> </s><</s>>",
    "\r\n\r\n",
]

PALETTE = (
    list("abcdefghijklmnopqrstuvwxyzABCDEZ0123456789")
    + list(" " * 12)
    + list(".,;:!?'\"()-/")
    + ["é", "ë", "ï", "ö", "ü", "à", "ç", "ñ", "ß", "ĳ", "Ĳ", "ﬁ", "ﬂ", "Ａ", "ａ", "０"]
    + ["\u00a0", "\u2009", "\u3000", "\t", "\n", "\r", "\u200b", "\u00ad", "\u0301", "\u0308"]
    + ["😀", "🙂", "👍", "🏽", "東", "京", "Ж", "ж", "α", "ω", "א", "ب", "€", "½", "…", "—", "–"]
    + ["„", "“", "”", "‘", "’", "«", "»", "´", "`", "%", "º"]
    + ["</s>", "<unk>", "<pad>", ">>nl<<", ">>", "<<", "▁", "@@", "km/h", "<eop>", "NOS"]
    + ["de ", "het ", "een ", "van ", "wereld", "nieuws", "kabinet", "Lukashenko", "minister"]
)


def random_inputs(n, seed=20240611):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 30)
        out.append("".join(rng.choice(PALETTE) for _ in range(k)))
    return out


# Near-ties in the Viterbi search: runs of characters that can be split several ways.
TIE_PALETTE = ["0", "00", "1", "e", "n", "s", "de", "en", "t", " ", "a", "aa"]


def tie_inputs(n, seed=99):
    rng = random.Random(seed)
    out = ["0" * k for k in range(1, 14)] + ["0 00 000 0000 00000 000000", "eeee nnnn ssss tttt"]
    for _ in range(n):
        out.append("".join(rng.choice(TIE_PALETTE) for _ in range(rng.randint(2, 16))))
    return out


def all_inputs():
    texts = list(HANDWRITTEN)
    texts += random_inputs(90)
    texts += tie_inputs(45)
    n_spm = len(texts)
    texts += lines(os.path.join(HERE, "corpus.nl.txt"))
    texts += seed_lines()
    texts += lines(os.path.join(HERE, "corpus.en.txt"))[:20]
    seen = set()
    uniq = []
    for t in texts:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    # Every text before n_spm is distinct (random inputs never repeat a hand-written one).
    return uniq, n_spm


def main():
    keep = "--keep-models" in sys.argv
    if not keep:
        train_all()
    build_dirs()
    inputs, n_spm_inputs = all_inputs()
    rng = random.Random(7)

    spm_ref = {}
    for name in sorted(os.listdir(SPM_DIR)):
        if not name.endswith(".model"):
            continue
        sp = spm.SentencePieceProcessor(model_file=os.path.join(SPM_DIR, name))
        # Piece-level reference for the hand-written and random inputs (the corpus sentences are
        # covered by the Marian-level ids below).
        pieces = [sp.encode(t, out_type=str) for t in inputs[:n_spm_inputs]]
        n = sp.get_piece_size()
        # Piece lists that are not the output of encode: random vocabulary pieces, pieces that are
        # not in the vocabulary, control and unknown pieces.
        extra_pieces = []
        for _ in range(60):
            k = rng.randint(0, 12)
            seq = []
            for _ in range(k):
                r = rng.random()
                if r < 0.7:
                    seq.append(sp.id_to_piece(rng.randrange(n)))
                elif r < 0.8:
                    seq.append(rng.choice(["▁", "▁▁", "x▁y", "▁nietinvocab", "<unk>", "<s>", "</s>"]))
                else:
                    seq.append(rng.choice(["<0x41>", "<0xC3>", "<0xA9>", "<0xE2>", "<0x82>", "<0xAC>", "<0xFF>"]))
            extra_pieces.append(seq)
        extra_decoded = [sp.decode_pieces(p) for p in extra_pieces]
        spm_ref[name[: -len(".model")]] = {
            "file": "spm/" + name,
            "piece_size": n,
            "pieces": pieces,
            "decode_pieces": [{"pieces": p, "text": t} for p, t in zip(extra_pieces, extra_decoded)],
        }

    marian_ref = {}
    for name in list(DIRS) + ["saved", "legacy"]:
        d = os.path.join(MODELS_DIR, name)
        tok = MarianTokenizer.from_pretrained(d)
        enc = [tok(t)["input_ids"] for t in inputs]
        dec = []
        # With separate vocabularies, decoding reads target ids: source ids mean nothing there.
        for ids in [] if tok.separate_vocabs else enc:
            try:
                dec.append(tok.decode(ids, skip_special_tokens=True))
            except Exception as e:  # noqa: BLE001
                dec.append({"error": f"{type(e).__name__}: {e}"})
        # Id sequences that are not the output of encode: random ids over the whole vocabulary
        # (special ids included, ids past vocab.json that fall back to the SentencePiece model).
        top = max(len(tok.encoder), tok.spm_source.get_piece_size(), tok.spm_target.get_piece_size())
        extra_ids = []
        for _ in range(30):
            k = rng.randint(0, 15)
            extra_ids.append([rng.randrange(len(tok.decoder)) for _ in range(k)])
        extra_ids.append([0, 1, 2, 3, len(tok.decoder) - 1])
        extra_ids.append([5, top + 5])
        extra_ids.append([])
        extra_ids.append([tok.pad_token_id, tok.eos_token_id, tok.unk_token_id])
        extra = []
        for ids in extra_ids:
            try:
                extra.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)})
            except Exception as e:  # noqa: BLE001
                extra.append({"ids": ids, "error": f"{type(e).__name__}: {e}"})
        # Target-side ids, as a model would produce them (the target model and vocabulary).
        targets = lines(os.path.join(HERE, "corpus.en.txt")) + inputs[:40]
        for t in targets:
            ids = tok(text_target=t)["input_ids"]
            try:
                extra.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)})
            except Exception as e:  # noqa: BLE001
                extra.append({"ids": ids, "error": f"{type(e).__name__}: {e}"})
        marian_ref[name] = {
            "dir": "models/" + name,
            "vocab_size": tok.vocab_size,
            "len": len(tok),
            "eos_id": tok.eos_token_id,
            "unk_id": tok.unk_token_id,
            "pad_id": tok.pad_token_id,
            "spm_top": top,
            "encode": enc,
            "decode": dec,
            "decode_ids": extra,
        }

    moses_ref = {}
    for lang in ["nl", "en", "de"]:
        norm = MosesPunctNormalizer(lang)
        moses_ref[lang] = [norm.normalize(t) if t else "" for t in inputs]

    out = {
        "produced_by": "tests/data/tokenizer/make_reference.py",
        "versions": {
            "python": sys.version.split()[0],
            "transformers": transformers.__version__,
            "sentencepiece": spm.__version__,
            "sacremoses": sacremoses.__version__,
            "unicodedata": unicodedata.unidata_version,
        },
        "inputs": inputs,
        "spm_inputs": n_spm_inputs,
        "spm": spm_ref,
        "marian": marian_ref,
        "moses": moses_ref,
    }
    with open(os.path.join(HERE, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{len(inputs)} inputs, {len(spm_ref)} spm models, {len(marian_ref)} marian dirs")


if __name__ == "__main__":
    main()
