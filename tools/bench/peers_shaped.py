"""Times CTranslate2 on a model built by tools/bench/make_shaped.py with a forced output length,
as ../shared/bench/bench_peers.py does for the opus-mt-nl-en shape (which tokenizes with
MarianTokenizer only): every sentence gets exactly NEW decoding steps. For an M2M100/NLLB model
the source gets its language token and `</s>` and the target its language token, as
transformers' translation pipeline gives them.

usage: python tools/bench/peers_shaped.py MODEL_OUT_DIR [--new 40] [--repeat 3] [--threads 2]
                                          [--engines ct2-f32,ct2-int8]
Prints one JSON object per line: engine, beams, batch, seconds (min, median), tokens/s, peak RSS,
load time. Each engine runs in its own process, so memory figures are its own.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SENTENCES = os.path.join(HERE, "..", "..", "..", "shared", "bench", "sentences_nl.txt")

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--new", type=int, default=40)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--engines", default="ct2-f32,ct2-int8")
ap.add_argument("--sentences", default=SENTENCES)
ap.add_argument("--one", default=None)
a = ap.parse_args()
sents = [l.strip() for l in open(a.sentences, encoding="utf-8") if l.strip()]


def one(engine):
    hf = os.path.join(a.model, "hf")
    t0 = time.perf_counter()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(hf)
    m2m = json.load(open(os.path.join(hf, "config.json")))["model_type"] == "m2m_100"
    if m2m:
        tok.src_lang = "nld_Latn"
    import ctranslate2
    tr = ctranslate2.Translator(os.path.join(a.model, engine), device="cpu", intra_threads=a.threads, inter_threads=1)

    def go(batch, beams):
        toks = [tok.convert_ids_to_tokens(tok(s)["input_ids"]) for s in batch]
        prefix = [["eng_Latn"]] * len(batch) if m2m else None
        tr.translate_batch(toks, target_prefix=prefix, beam_size=beams, min_decoding_length=a.new,
                           max_decoding_length=a.new, max_batch_size=len(batch))
    load = time.perf_counter() - t0
    for beams in (1, 4):
        for bs in (1, len(sents)):
            go(sents[:bs], beams)  # warm-up
            times = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                for i in range(0, len(sents), bs):
                    go(sents[i:i + bs], beams)
                times.append(time.perf_counter() - t)
            n = len(sents) * a.new
            print(json.dumps({"engine": engine, "beams": beams, "batch": bs, "load_s": round(load, 3),
                              "min_s": round(min(times), 4), "median_s": round(statistics.median(times), 4),
                              "tokens_per_s": round(n / min(times), 1),
                              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}),
                  flush=True)


if a.one:
    one(a.one)
else:
    for e in a.engines.split(","):
        subprocess.run([sys.executable, __file__, a.model, "--new", str(a.new), "--repeat", str(a.repeat),
                        "--threads", str(a.threads), "--sentences", a.sentences, "--one", e], check=True)
