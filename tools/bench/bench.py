"""Side-by-side CPU speed of tolk and its peers on a random model with the exact shape of
Helsinki-NLP/opus-mt-nl-en, every engine forced to produce the same number of tokens.

usage (from the repository root, after `cargo build --release`):
    python3 tools/bench/bench.py [--peers ../shared/bench] [--model-dir target/bench-model]
                                 [--new 40] [--repeat 3] [--threads 2] [--engines tolk,tolk-int8,ct2-f32,ct2-int8]

The model is built once with PEERS/make_model.py (needs torch, transformers, sentencepiece,
ctranslate2, sacremoses: see PEERS/README.md); PEERS/bench_peers.py times CTranslate2 (and
transformers with `--engines ...,hf`) in one process per engine: load, one warm-up call, then the
best of `--repeat` timed calls. tolk is timed the same way, through its command line:

    tolk bench --model DIR/hf --segment lines --no-summary --num-beams B --batch-size N \
        --min-new-tokens 40 --max-new-tokens 40 [--quantize int8] --repeat R sentences.txt

(load, a warm-up run, the best of R runs of exactly what `tolk translate` runs with these options),
one process per setting, plus the peak resident memory of the process and the load time. Also
timed: a fresh `tolk translate` process translating the batch once (no warm-up), and a
1,000-sentence document. Prints a Markdown table with tokens per second and the ratios
tolk / CTranslate2 of the same precision.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def options(model_dir, beams, batch, new, threads, quantize):
    cmd = ["--model", os.path.join(model_dir, "hf"), "--segment", "lines", "--no-summary",
           "--num-beams", str(beams), "--batch-size", str(batch), "--max-batch-tokens", "1000000",
           "--min-new-tokens", str(new), "--max-new-tokens", str(new), "--threads", str(threads), "--quiet"]
    return cmd + (["--quantize", "int8"] if quantize else [])


def with_rss(cmd):
    """Runs cmd; returns (stdout, peak resident memory in MB of that process alone)."""
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", wrapper] + cmd, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"tolk failed ({' '.join(cmd)}):\n{proc.stderr.decode()}")
    return proc.stdout, int(proc.stderr.decode().strip().splitlines()[-1]) / 1024


def run_tolk(args, binary, model_dir, sentences_file, beams, batch, new, quantize):
    """`tolk bench`: load, warm-up, best of --repeat; returns (seconds, load seconds, RSS MB)."""
    cmd = [binary, "bench"] + options(model_dir, beams, batch, new, args.threads, quantize) + [
        "--repeat", str(args.repeat), sentences_file]
    out, rss = with_rss(cmd)
    data = json.loads(out)
    n = sum(1 for l in open(sentences_file, encoding="utf-8") if l.strip())
    if data["target_tokens"] != n * new:
        sys.exit(f"tolk produced {data['target_tokens']} tokens, expected {n * new}")
    return data["min_s"], data["load_s"], rss


def run_tolk_cold(args, binary, model_dir, sentences_file, beams, batch, new, quantize):
    """A fresh `tolk translate` process, one translation (no warm-up); best of --repeat processes."""
    cmd = [binary, "translate", "--format", "json"] + options(model_dir, beams, batch, new, args.threads,
                                                             quantize) + [sentences_file]
    best = None
    for _ in range(args.repeat):
        out, _ = with_rss(cmd)
        data = json.loads(out)
        for s in data["sentences"]:
            if s["target_tokens"] != new:
                sys.exit(f"tolk produced {s['target_tokens']} tokens for a sentence, expected {new}")
        t = data["timings"]["translate_seconds"]
        best = t if best is None else min(best, t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", default=os.path.join(REPO, "..", "shared", "bench"))
    ap.add_argument("--model-dir", default=os.environ.get("TOLK_BENCH_MODEL", os.path.join(REPO, "target", "bench-model")))
    ap.add_argument("--tolk", default=os.path.join(REPO, "target", "release", "tolk"))
    ap.add_argument("--new", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="tolk,tolk-int8,ct2-f32,ct2-int8")
    ap.add_argument("--doc-sentences", type=int, default=1000,
                    help="also time a document of this many sentences (tolk only; 0 to skip)")
    args = ap.parse_args()
    engines = args.engines.split(",")
    sentences_file = os.path.join(args.peers, "sentences_nl.txt")
    sents = [l for l in open(sentences_file, encoding="utf-8").read().splitlines() if l.strip()]
    if not os.path.isdir(os.path.join(args.model_dir, "hf")):
        print(f"building the opus-mt-nl-en-shaped model in {args.model_dir} ...", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(args.peers, "make_model.py"), args.model_dir], check=True)
    rows = {}
    for engine in engines:
        if not engine.startswith("tolk"):
            continue
        q = engine == "tolk-int8"
        if q:  # the first run quantises and caches; time the steady state
            run_tolk(argparse.Namespace(**{**vars(args), "repeat": 1}), args.tolk, args.model_dir, sentences_file, 1, 1, 2, q)
        r = {}
        for beams in (1, 4):
            for batch in (1, len(sents)):
                t, load, rss = run_tolk(args, args.tolk, args.model_dir, sentences_file, beams, batch, args.new, q)
                r[(beams, batch)] = len(sents) * args.new / t
                r["load"] = load
                r["rss"] = max(r.get("rss", 0), rss)
                print(json.dumps({"engine": engine, "beams": beams, "batch": batch,
                                  "tokens_per_s": round(r[(beams, batch)], 1)}), file=sys.stderr, flush=True)
        t = run_tolk_cold(args, args.tolk, args.model_dir, sentences_file, 1, len(sents), args.new, q)
        r["cold"] = len(sents) * args.new / t
        if args.doc_sentences:
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
                for i in range(args.doc_sentences):
                    f.write(sents[i % len(sents)] + "\n")
            t = run_tolk_cold(argparse.Namespace(**{**vars(args), "repeat": 1}), args.tolk, args.model_dir, f.name,
                              1, 64, args.new, q)
            os.unlink(f.name)
            r["doc"] = args.doc_sentences * args.new / t
        rows[engine] = r
    peers = [e for e in engines if not e.startswith("tolk")]
    if peers:
        out = subprocess.run([sys.executable, os.path.join(args.peers, "bench_peers.py"), args.model_dir,
                              "--new", str(args.new), "--repeat", str(args.repeat), "--threads", str(args.threads),
                              "--engines", ",".join(peers)], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            d = json.loads(line)
            r = rows.setdefault(d["engine"], {})
            r[(d["beams"], d["batch"])] = d["tokens_per_s"]
            r["load"] = d["load_s"]
            r["rss"] = max(r.get("rss", 0), d["peak_rss_mb"])
    n = len(sents)
    cols = [(1, 1), (1, n), (4, 1), (4, n)]
    print(f"\n| engine | greedy, batch 1 | greedy, batch {n} | beam 4, batch 1 | beam 4, batch {n} | peak RSS | load |")
    print("|---|---|---|---|---|---|---|")
    for e, r in rows.items():
        cells = [f"{r[c]:.1f}" if c in r else "-" for c in cols]
        print(f"| {e} | " + " | ".join(cells) + f" | {r.get('rss', 0):.0f} MB | {r.get('load', 0):.2f} s |")
    for mine, peer in [("tolk", "ct2-f32"), ("tolk-int8", "ct2-int8")]:
        if mine in rows and peer in rows:
            ratios = [f"{rows[mine][c] / rows[peer][c]:.2f}x" for c in cols]
            print(f"| {mine} / {peer} | " + " | ".join(ratios)
                  + f" | {rows[mine]['rss'] / rows[peer]['rss']:.2f}x | {rows[mine]['load'] / rows[peer]['load']:.2f}x |")
    for e, r in rows.items():
        if "cold" in r:
            print(f"\n{e}: a fresh `tolk translate` process, greedy, batch of {n}, one translation: "
                  f"{r['cold']:.1f} tokens/s")
        if "doc" in r:
            print(f"\n{e}: {args.doc_sentences}-sentence document, greedy, batches of 64: {r['doc']:.1f} tokens/s")


if __name__ == "__main__":
    main()
