"""How often int8 quantisation changes CTranslate2's output on tolk's parity fixtures, to put
tolk's own figure (tests/it/parity.rs, `int8_quantisation_keeps_outputs_identical`) in context.

usage: python3 tools/bench/int8_fidelity.py [tests/fixtures/marian-tiny ...]   (needs ctranslate2,
transformers, sentencepiece: see tools/fixtures/requirements.txt)

For each fixture: converts it to CTranslate2 float32 and int8, translates the fixture's 237
sentences with greedy search and with 4 beams (as many new tokens as the fixture's settings allow),
and prints the share of sentences whose int8 output equals the float32 output.
"""
import json
import os
import sys
import tempfile

import ctranslate2
from ctranslate2.converters import TransformersConverter
from transformers import MarianTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    dirs = sys.argv[1:] or [os.path.join(REPO, "tests", "fixtures", n)
                            for n in ("marian-tiny", "marian-tiny-relu", "marian-tiny-trained")]
    for d in dirs:
        ref = json.load(open(os.path.join(d, "reference.json"), encoding="utf-8"))
        new = max(s["kwargs"].get("max_new_tokens", 40) for s in ref["settings"] if "max_new_tokens" in s["kwargs"])
        tok = MarianTokenizer.from_pretrained(d)
        toks = [tok.tokenize(s) + [tok.eos_token] for s in ref["sentences"]]
        with tempfile.TemporaryDirectory() as tmp:
            out = {}
            for q in ("float32", "int8"):
                path = os.path.join(tmp, q)
                TransformersConverter(d).convert(path, quantization=None if q == "float32" else q, force=True)
                tr = ctranslate2.Translator(path, device="cpu", intra_threads=2)
                for beams in (1, 4):
                    res = tr.translate_batch(toks, beam_size=beams, max_decoding_length=new, max_batch_size=16)
                    out[(q, beams)] = [r.hypotheses[0] for r in res]
            for beams in (1, 4):
                a, b = out[("float32", beams)], out[("int8", beams)]
                same = sum(x == y for x, y in zip(a, b))
                print(f"{os.path.basename(d)} CTranslate2 int8 vs float32, {'greedy' if beams == 1 else 'beam 4'}: "
                      f"{same}/{len(a)} identical ({100 * same / len(a):.1f} %)", flush=True)


if __name__ == "__main__":
    main()
