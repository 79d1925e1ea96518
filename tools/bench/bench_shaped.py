"""Forced-length speed of tolk and CTranslate2 on the larger shapes of tools/bench/make_shaped.py
(nllb-600m, tc-big): tokens per second and peak memory, float32 and int8, for the settings asked.

usage (after `cargo build --release` and make_shaped.py):
    python3 tools/bench/bench_shaped.py DIR [--settings 1x1,4x19] [--new 40] [--repeat 3]
                                          [--threads 2] [--python VENV/bin/python]

A setting BxN is B beams, batches of N sentences (of the 19 in ../shared/bench/sentences_nl.txt).
tolk runs `tolk bench --model DIR/hf --segment lines --no-summary --num-beams B --batch-size N
--min-new-tokens NEW --max-new-tokens NEW [--quantize int8] --repeat R` (plus --source-lang nl
--target-lang en for an M2M100/NLLB model), one process per setting; CTranslate2 runs through
tools/bench/peers_shaped.py (same sentences, same forced length, its language tokens as
transformers gives them). Prints the CPU and a Markdown table with the ratios tolk / CTranslate2
of the same precision.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench import cpu_line, with_rss  # noqa: E402

SENTENCES = os.path.join(REPO, "..", "shared", "bench", "sentences_nl.txt")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--settings", default="1x1,1x19,4x1,4x19")
    ap.add_argument("--new", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--tolk", default=os.path.join(REPO, "target", "release", "tolk"))
    a = ap.parse_args()
    print(cpu_line(a.threads))
    hf = os.path.join(a.model, "hf")
    m2m = json.load(open(os.path.join(hf, "config.json")))["model_type"] == "m2m_100"
    n = sum(1 for l in open(SENTENCES, encoding="utf-8") if l.strip())
    settings = [tuple(int(x) for x in s.split("x")) for s in a.settings.split(",")]
    rows = {}
    for quantize in (None, "int8"):
        for beams, batch in settings:
            cmd = [a.tolk, "bench", "--model", hf, "--segment", "lines", "--no-summary", "--num-beams", str(beams),
                   "--batch-size", str(batch), "--max-batch-tokens", "1000000", "--min-new-tokens", str(a.new),
                   "--max-new-tokens", str(a.new), "--threads", str(a.threads), "--quiet", "--repeat", str(a.repeat)]
            cmd += ["--source-lang", "nl", "--target-lang", "en"] if m2m else []
            cmd += ["--quantize", quantize] if quantize else []
            out, rss = with_rss(cmd + [SENTENCES])
            data = json.loads(out)
            rows[("tolk", quantize, beams, batch)] = (n * a.new / data["min_s"], rss)
            print(json.dumps({"engine": "tolk", "quantize": quantize, "beams": beams, "batch": batch,
                              "tokens_per_s": round(n * a.new / data["min_s"], 1), "peak_rss_mb": round(rss),
                              "target_tokens": data["target_tokens"]}), flush=True)
    for engine in ("ct2-f32", "ct2-int8"):
        out = subprocess.run([a.python, os.path.join(HERE, "peers_shaped.py"), a.model, "--new", str(a.new),
                              "--repeat", str(a.repeat), "--threads", str(a.threads), "--one", engine,
                              "--sentences", SENTENCES], capture_output=True, check=True, text=True).stdout
        for line in out.splitlines():
            r = json.loads(line)
            if (r["beams"], r["batch"]) in settings:
                q = None if engine == "ct2-f32" else "int8"
                rows[("ct2", q, r["beams"], r["batch"])] = (r["tokens_per_s"], r["peak_rss_mb"])
                print(line, flush=True)
    print()
    print("| precision | setting | tolk tok/s | CTranslate2 tok/s | tolk / CTranslate2 | peak RSS tolk / CT2 (MB) |")
    print("|---|---|---|---|---|---|")
    for q in (None, "int8"):
        for beams, batch in settings:
            t = rows.get(("tolk", q, beams, batch))
            c = rows.get(("ct2", q, beams, batch))
            if t and c:
                print(f"| {q or 'float32'} | beam {beams}, batch {batch} | {t[0]:.1f} | {c[0]:.1f} | "
                      f"{t[0] / c[0]:.2f}x | {t[1]:.0f} / {c[1]:.0f} |")


if __name__ == "__main__":
    main()
