"""The peers of tools/bench/bench.py's natural-length mode: transformers (PyTorch float32) and
CTranslate2 on a real-weights MarianMT model, every sentence stopping at its own </s>.

usage (with a Python that has torch, transformers, sentencepiece and ctranslate2):
    python peers_natural.py ref  --hf-dir HF_DIR --beams B SENTENCES
    python peers_natural.py time --engine hf|ct2 [--model CT2_DIR] --hf-dir HF_DIR
                                 [--beams 1,4] [--batches 1,32] [--repeat 2] [--threads 2] SENTENCES
    python peers_natural.py cold --model CT2_DIR --hf-dir HF_DIR [--threads 2] SENTENCES

SENTENCES has one sentence a line. HF_DIR is the Hugging Face layout model (config.json,
generation_config.json, source.spm, target.spm, vocab.json, weights); CT2_DIR a CTranslate2 model
of the same vocabulary (converted from HF_DIR, or the Argos package's own int8 model).

ref:  transformers float32, one sentence at a time (no padding), B beams and otherwise the model's
      generation_config.json; prints one JSON object {"translations": [...], "seconds": s}.
time: loads the engine in this process (Python imports included in load_s), then for every beam
      count and batch size: one warm-up call (its translations are returned), then the best of
      --repeat timed calls of the whole file. Prints one JSON object per setting: engine, beams,
      batch, load_s, min_s, median_s, sentences, target_tokens (</s> included), sentences_per_s,
      peak_rss_mb (of this process so far) and translations.
cold: what a lean CTranslate2 user program does once: import, load, translate the file with the
      model's own num_beams (generation_config.json) in batches of 32, print {"beams", "translations"}.
      The caller times the whole process.

Tokenisation is SentencePiece with HF_DIR/source.spm (the same pieces as MarianTokenizer), with
</s> appended unless the CTranslate2 model adds it itself (add_source_eos); detokenisation is
HF_DIR/target.spm decode_pieces (what MarianTokenizer.decode does). CTranslate2 is given every
sentence in one translate_batch call with max_batch_size = the batch size (it sorts by length and
cuts batches itself); transformers' batches are cut the same way (sorted by source length).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def generation_config(hf_dir):
    path = os.path.join(hf_dir, "generation_config.json")
    return json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}


class Ct2:
    """CTranslate2 with SentencePiece tokenisation (imports happen here, so load time counts them)."""

    def __init__(self, model, hf_dir, threads):
        import ctranslate2
        import sentencepiece as spm
        self.src = spm.SentencePieceProcessor(model_file=os.path.join(hf_dir, "source.spm"))
        self.tgt = spm.SentencePieceProcessor(model_file=os.path.join(hf_dir, "target.spm"))
        cfg = json.load(open(os.path.join(model, "config.json"), encoding="utf-8"))
        self.eos = [] if cfg.get("add_source_eos") else ["</s>"]
        self.max_len = generation_config(hf_dir).get("max_length", 512)
        self.tr = ctranslate2.Translator(model, device="cpu", intra_threads=threads, inter_threads=1)

    def translate(self, sents, beams, batch):
        toks = [self.src.encode(s, out_type=str) + self.eos for s in sents]
        res = self.tr.translate_batch(toks, beam_size=beams, max_batch_size=batch,
                                      max_decoding_length=self.max_len)
        hyps = [r.hypotheses[0] for r in res]
        return [self.tgt.decode_pieces(h) for h in hyps], sum(len(h) + 1 for h in hyps)


class Hf:
    """transformers MarianMTModel, float32, PyTorch on the CPU."""

    def __init__(self, hf_dir, threads):
        import warnings
        import torch
        from transformers import MarianMTModel, MarianTokenizer
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        warnings.filterwarnings("ignore")
        torch.set_num_threads(threads)
        self.torch = torch
        self.tok = MarianTokenizer.from_pretrained(hf_dir)
        self.model = MarianMTModel.from_pretrained(hf_dir).eval()
        self.eos = self.model.generation_config.eos_token_id

    def translate(self, sents, beams, batch):
        order = sorted(range(len(sents)), key=lambda i: len(self.tok.tokenize(sents[i])))
        texts, tokens = [None] * len(sents), 0
        with self.torch.inference_mode():
            for k in range(0, len(order), batch):
                idx = order[k:k + batch]
                enc = self.tok([sents[i] for i in idx], return_tensors="pt", padding=True)
                out = self.model.generate(**enc, num_beams=beams)
                for i, row in zip(idx, out.tolist()):
                    row = row[1:]  # the decoder start token
                    n = row.index(self.eos) + 1 if self.eos in row else len(row)
                    tokens += n
                    texts[i] = self.tok.decode(row[:n], skip_special_tokens=True)
        return texts, tokens


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["ref", "time", "cold"])
    ap.add_argument("sentences")
    ap.add_argument("--engine", choices=["hf", "ct2"], default="ct2")
    ap.add_argument("--model", help="CTranslate2 model directory (engine ct2)")
    ap.add_argument("--hf-dir", required=True)
    ap.add_argument("--beams", default="1,4")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sents = [l.strip() for l in open(a.sentences, encoding="utf-8") if l.strip()]

    if a.mode == "cold":
        engine = Ct2(a.model, a.hf_dir, a.threads)
        beams = int(generation_config(a.hf_dir).get("num_beams", 1))
        texts, _ = engine.translate(sents, beams, 32)
        print(json.dumps({"beams": beams, "translations": texts}, ensure_ascii=False))
        return

    if a.mode == "ref":
        engine = Hf(a.hf_dir, a.threads)
        t = time.perf_counter()
        texts, _ = engine.translate(sents, int(a.beams), 1)
        print(json.dumps({"translations": texts, "seconds": round(time.perf_counter() - t, 3)},
                         ensure_ascii=False))
        return

    t0 = time.perf_counter()
    engine = Hf(a.hf_dir, a.threads) if a.engine == "hf" else Ct2(a.model, a.hf_dir, a.threads)
    load = time.perf_counter() - t0
    name = "hf" if a.engine == "hf" else a.model
    for beams in map(int, a.beams.split(",")):
        for batch in map(int, a.batches.split(",")):
            texts, tokens = engine.translate(sents, beams, batch)  # warm-up
            times = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                _, n = engine.translate(sents, beams, batch)
                times.append(time.perf_counter() - t)
                if n != tokens:
                    sys.exit(f"{name}: a timed run produced {n} tokens, the warm-up run {tokens}")
            print(json.dumps({"engine": name, "beams": beams, "batch": batch, "load_s": round(load, 3),
                              "min_s": round(min(times), 4), "median_s": round(statistics.median(times), 4),
                              "sentences": len(sents), "target_tokens": tokens,
                              "sentences_per_s": round(len(sents) / min(times), 2),
                              "peak_rss_mb": round(peak_rss_mb(), 1), "translations": texts},
                             ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
