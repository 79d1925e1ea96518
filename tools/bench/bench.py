"""Side-by-side CPU speed of tolk and its peers, in two modes.

Forced length (the default): a random model with the exact shape of Helsinki-NLP/opus-mt-nl-en,
every engine forced to produce the same number of tokens.

usage (from the repository root, after `cargo build --release`):
    python3 tools/bench/bench.py [--peers ../shared/bench] [--model-dir target/bench-model]
                                 [--new 40] [--repeat 3] [--threads 2] [--engines tolk,tolk-int8,tolk-int8-fast,ct2-f32,ct2-int8]

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

Natural length (`--real-model DIR`): a MarianMT model with real weights (OPUS-MT zh->en, built by
../shared/real-model/build.sh; same shape as opus-mt-nl-en), every sentence stopping at its own
</s>, on tools/bench/zh_sentences.txt (one sentence a line):

    python3 tools/bench/bench.py --real-model DIR --python VENV/bin/python \
        [--ct2-f32 DIR-ct2-f32] [--ct2-int8 DIR/../real-model-work/argos/translate-zh_en-1_9/model] \
        [--sentences tools/bench/zh_sentences.txt] [--limit N] [--batch 32] [--repeat 2] [--threads 2] \
        [--engines tolk,tolk-int8,tolk-int8-fast,ct2-f32,ct2-int8[,hf]] [--article-sentences 20] [--save results.json]

Engines: tolk float32 and int8 (`tolk bench ... --num-beams B --batch-size N --max-batch-tokens
1000000 --repeat R`, then `tolk translate --format json` with the same options for the texts),
CTranslate2 float32 (DIR converted; built with the Python converter if missing) and CTranslate2
int8 (the Argos Translate package's own model, what Argos Translate and LibreTranslate run),
optionally transformers float32 (`hf`), all timed the same way (load, one warm-up call, best of
--repeat calls of the whole file; sentences per second), greedy and 4 beams, one sentence at a
time and batches of --batch; peers through tools/bench/peers_natural.py, run by --python (their
load time includes their Python imports). The default directories are those of
`build.sh DIR DIR/../real-model-work` (VENV: the packages of ../shared/bench/README.md).
Agreement: how many sentences give exactly the text of transformers float32 with the same beam
count, one sentence at a time (the reference, cached in --ref-cache, keyed by model directory,
weights and setting, so it is computed once). Also "the default user setting": a fresh process
per engine translating the first --article-sentences lines with the model's own num_beams
(generation_config.json) and every other option at its default (`tolk translate --model DIR
--no-summary --format json`; CTranslate2 in batches of 32), wall time including process start and
load, best of --repeat processes.

Both modes print the CPU (/proc/cpuinfo model name, family, model, vector extensions) and the
thread count first. bench.py itself needs only the standard library.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(REPO, "tools", "bench")


def cpu_line(threads):
    """The CPU as /proc/cpuinfo names it, and the thread count of the run."""
    info = {}
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    flags = info.get("flags", "").split()
    ext = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8") if f in flags]
    line = (f"CPU: {name} (cpu family {info.get('cpu family', '?')}, model {info.get('model', '?')}; "
            f"{' '.join(ext) or 'no AVX2'}), {os.cpu_count()} logical CPUs; threads: {threads}")
    if hasattr(os, "getloadavg"):
        # CTranslate2's worker threads spin: on a busy machine its figures drop several-fold first.
        load = os.getloadavg()[0]
        line += f"; load average before the run: {load:.2f}" + (" (busy: figures unreliable)" if load > 0.5 else "")
    return line


def measured(cmd, what="tolk"):
    """Runs cmd; returns (stdout, peak resident memory in MB of that process alone, wall seconds)."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); r = subprocess.run(sys.argv[1:]); "
               "t = time.perf_counter() - t; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, t, file=sys.stderr); "
               "sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", wrapper] + cmd, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"{what} failed ({' '.join(cmd)}):\n{proc.stderr.decode()}")
    rss, wall = proc.stderr.decode().strip().splitlines()[-1].split()
    return proc.stdout, int(rss) / 1024, float(wall)


def with_rss(cmd):
    """Runs cmd; returns (stdout, peak resident memory in MB of that process alone)."""
    out, rss, _ = measured(cmd)
    return out, rss


# ---------------------------------------------------------------------------------------------
# Forced length: random opus-mt-nl-en-shaped model.

def options(model_dir, beams, batch, new, threads, quantize):
    cmd = ["--model", os.path.join(model_dir, "hf"), "--segment", "lines", "--no-summary",
           "--num-beams", str(beams), "--batch-size", str(batch), "--max-batch-tokens", "1000000",
           "--min-new-tokens", str(new), "--max-new-tokens", str(new), "--threads", str(threads), "--quiet"]
    return cmd + (["--quantize", quantize] if quantize else [])


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


def main_forced(args):
    engines = args.engines.split(",")
    sentences_file = os.path.join(args.peers, "sentences_nl.txt")
    sents = [l for l in open(sentences_file, encoding="utf-8").read().splitlines() if l.strip()]
    if not os.path.isdir(os.path.join(args.model_dir, "hf")):
        print(f"building the opus-mt-nl-en-shaped model in {args.model_dir} ...", file=sys.stderr)
        subprocess.run([args.python, os.path.join(args.peers, "make_model.py"), args.model_dir], check=True)
    rows = {}
    for engine in engines:
        if not engine.startswith("tolk"):
            continue
        q = QUANTIZE[engine]
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
        out = subprocess.run([args.python, os.path.join(args.peers, "bench_peers.py"), args.model_dir,
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
    for mine, peer in [("tolk", "ct2-f32"), ("tolk-int8", "ct2-int8"), ("tolk-int8-fast", "ct2-int8")]:
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


# ---------------------------------------------------------------------------------------------
# Natural length: real weights, every sentence stops at its own </s>.

QUANTIZE = {"tolk": None, "tolk-int8": "int8", "tolk-int8-fast": "int8-fast"}
LABELS = {"tolk": "tolk float32", "tolk-int8": "tolk int8", "tolk-int8-fast": "tolk int8-fast", "ct2-f32": "CTranslate2 float32",
          "ct2-int8": "CTranslate2 int8 (Argos package model)", "hf": "transformers float32"}


def write_lines(lines):
    """A temporary file with one line per sentence; the caller unlinks it."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("".join(l + "\n" for l in lines))
    return f.name


def run_peer(cmd):
    """Runs a peer process; returns its standard output (its standard error only if it fails)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"peer failed ({' '.join(cmd)}):\n{proc.stderr}")
    return proc.stdout


def weights_signature(model):
    """Size and modification time of the weight files, so that a rebuilt model is a new cache key."""
    sig = []
    for name in ("model.safetensors", "pytorch_model.bin"):
        p = os.path.join(model, name)
        if os.path.exists(p):
            st = os.stat(p)
            sig.append(f"{name}:{st.st_size}:{int(st.st_mtime)}")
    return " ".join(sig)


def reference(args, sents, beams):
    """transformers float32 translations, one sentence at a time, with `beams` beams: read from the
    cache, computing (and caching) only the sentences it lacks."""
    key = json.dumps({"model": os.path.abspath(args.real_model), "weights": weights_signature(args.real_model),
                      "engine": "transformers float32", "beams": beams, "batch": 1}, sort_keys=True)
    cache = {}
    if os.path.exists(args.ref_cache):
        cache = json.load(open(args.ref_cache, encoding="utf-8"))
    entry = cache.setdefault(key, {})
    missing = sorted({s for s in sents if s not in entry})
    if missing:
        print(f"transformers reference, beams {beams}: translating {len(missing)} sentences ...",
              file=sys.stderr, flush=True)
        path = write_lines(missing)
        try:
            out = run_peer([args.python, os.path.join(HERE, "peers_natural.py"), "ref", "--hf-dir",
                            args.real_model, "--beams", str(beams), "--threads", str(args.threads), path])
        finally:
            os.unlink(path)
        entry.update(zip(missing, json.loads(out.splitlines()[-1])["translations"]))
        os.makedirs(os.path.dirname(os.path.abspath(args.ref_cache)), exist_ok=True)
        tmp = args.ref_cache + ".tmp"
        json.dump(cache, open(tmp, "w", encoding="utf-8"), ensure_ascii=False, indent=0)
        os.replace(tmp, args.ref_cache)
    return [entry[s] for s in sents]


def tolk_natural(args, path, n, beams, batch, quantize):
    """`tolk bench` (timing) then `tolk translate --format json` (texts) with the same options."""
    opts = ["--model", args.real_model, "--segment", "lines", "--no-summary", "--num-beams", str(beams),
            "--batch-size", str(batch), "--max-batch-tokens", "1000000", "--threads", str(args.threads),
            "--quiet"] + (["--quantize", quantize] if quantize else [])
    out, rss, _ = measured([args.tolk, "bench"] + opts + ["--repeat", str(args.repeat), path])
    data = json.loads(out)
    if data["sentences"] != n:
        sys.exit(f"tolk bench translated {data['sentences']} sentences, expected {n}")
    out, rss2, _ = measured([args.tolk, "translate", "--format", "json"] + opts + [path])
    texts = [s["translation"] for s in json.loads(out)["sentences"] if s["translation"] is not None]
    if len(texts) != n:
        sys.exit(f"tolk translate gave {len(texts)} translations, expected {n}")
    return {"min_s": data["min_s"], "load_s": data["load_s"], "target_tokens": data["target_tokens"],
            "rss": max(rss, rss2), "translations": texts}


def ensure_ct2_f32(args):
    if os.path.exists(os.path.join(args.ct2_f32, "model.bin")):
        return
    print(f"converting {args.real_model} to CTranslate2 float32 in {args.ct2_f32} ...", file=sys.stderr)
    subprocess.run([args.python, "-c", "import sys, ctranslate2.converters as c; "
                    "c.TransformersConverter(sys.argv[1]).convert(sys.argv[2], quantization=None, force=True)",
                    args.real_model, args.ct2_f32], check=True)


def peer_dir(args, engine):
    return {"ct2-f32": args.ct2_f32, "ct2-int8": args.ct2_int8}.get(engine)


def peers_natural(args, engine, path):
    """One process per engine: {(beams, batch): result}."""
    cmd = [args.python, os.path.join(HERE, "peers_natural.py"), "time", "--hf-dir", args.real_model,
           "--beams", "1,4", "--batches", f"1,{args.batch}", "--repeat", str(args.repeat),
           "--threads", str(args.threads), path]
    cmd += ["--engine", "hf"] if engine == "hf" else ["--engine", "ct2", "--model", peer_dir(args, engine)]
    out = run_peer(cmd)
    res = {}
    for line in out.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            res[(d["beams"], d["batch"])] = {"min_s": d["min_s"], "load_s": d["load_s"], "rss": d["peak_rss_mb"],
                                             "target_tokens": d["target_tokens"], "translations": d["translations"]}
    return res


def default_setting(args, engine, path):
    """A fresh process translating the article with the model's defaults: (best wall s, RSS MB, texts)."""
    if engine.startswith("tolk"):
        cmd = [args.tolk, "translate", "--model", args.real_model, "--threads", str(args.threads), "--no-summary",
               "--format", "json", "--quiet"] + (["--quantize", QUANTIZE[engine]] if QUANTIZE[engine] else []) + [path]
    else:
        cmd = [args.python, os.path.join(HERE, "peers_natural.py"), "cold", "--model", peer_dir(args, engine),
               "--hf-dir", args.real_model, "--threads", str(args.threads), path]
    best, rss, texts = None, 0, None
    for _ in range(args.repeat):
        out, r, wall = measured(cmd, engine)
        data = json.loads(out)
        texts = ([s["translation"] for s in data["sentences"] if s["translation"] is not None]
                 if engine.startswith("tolk") else data["translations"])
        best = wall if best is None else min(best, wall)
        rss = max(rss, r)
    return best, rss, texts


def main_natural(args):
    args.real_model = os.path.abspath(args.real_model)
    parent = os.path.dirname(args.real_model)
    args.ct2_f32 = args.ct2_f32 or args.real_model + "-ct2-f32"
    args.ct2_int8 = args.ct2_int8 or os.path.join(parent, "real-model-work", "argos", "translate-zh_en-1_9", "model")
    engines = [e for e in args.engines.split(",") if e]  # none: only fill the reference cache
    unknown = [e for e in engines if e not in LABELS]
    if unknown:
        sys.exit(f"unknown engine(s) {', '.join(unknown)}: use {', '.join(LABELS)}")
    if "ct2-f32" in engines:
        ensure_ct2_f32(args)
    if "ct2-int8" in engines and not os.path.exists(os.path.join(args.ct2_int8, "model.bin")):
        sys.exit(f"no CTranslate2 int8 model in {args.ct2_int8} (run ../shared/real-model/build.sh, or --ct2-int8)")
    gen = json.load(open(os.path.join(args.real_model, "generation_config.json"), encoding="utf-8"))
    model_beams = int(gen.get("num_beams", 1))
    all_sents = [l.strip() for l in open(args.sentences, encoding="utf-8") if l.strip()]
    sents = all_sents[:args.limit] if args.limit else all_sents
    article = all_sents[:args.article_sentences]
    n, b = len(sents), args.batch
    cols = [(1, 1), (1, b), (4, 1), (4, b)]
    refs = {beams: reference(args, sents, beams) for beams in (1, 4)}
    art_ref = reference(args, article, model_beams) if args.article_sentences else []
    if not engines:
        print(f"transformers references for {len(set(sents + article))} sentences cached in {args.ref_cache}")
        return
    path = write_lines(sents)
    rows, saved = {}, {"cpu": args.cpu, "sentences": sents, "reference": refs, "engines": {}}
    try:
        for engine in engines:
            if engine.startswith("tolk"):
                q = QUANTIZE[engine]
                if q:  # the first run quantises and caches; time the steady state
                    one = write_lines(sents[:1])
                    measured([args.tolk, "translate", "--model", args.real_model, "--segment", "lines",
                              "--no-summary", "--quantize", "int8", "--quiet", one])
                    os.unlink(one)
                res = {c: tolk_natural(args, path, n, c[0], c[1], q) for c in cols}
            else:
                res = peers_natural(args, engine, path)
            rows[engine] = res
            for (beams, batch), r in res.items():
                same = sum(x == y for x, y in zip(r["translations"], refs[beams]))
                r["same"] = same
                print(json.dumps({"engine": engine, "beams": beams, "batch": batch,
                                  "sentences_per_s": round(n / r["min_s"], 2), "target_tokens": r["target_tokens"],
                                  "same_as_transformers": f"{same}/{n}", "load_s": r["load_s"],
                                  "peak_rss_mb": round(r["rss"])}), file=sys.stderr, flush=True)
            saved["engines"][engine] = {f"beams{k[0]}-batch{k[1]}": v for k, v in res.items()}
    finally:
        os.unlink(path)

    cold = {}
    if args.article_sentences:
        apath = write_lines(article)
        try:
            for engine in engines:
                if engine != "hf":
                    wall, rss, texts = default_setting(args, engine, apath)
                    same = (f"{sum(x == y for x, y in zip(texts, art_ref))}/{len(article)}"
                            if len(texts) == len(article) else f"- ({len(texts)} segments)")
                    cold[engine] = (wall, rss, same)
                    saved.setdefault("default_setting", {})[engine] = {"wall_s": wall, "rss": rss,
                                                                       "translations": texts}
        finally:
            os.unlink(apath)

    print(f"\n{n} sentences of {os.path.relpath(args.sentences)}, {sum(map(len, sents))} characters; "
          f"model {args.real_model}; sentences per second, best of {args.repeat} after a warm-up")
    print(f"\n| engine | greedy, 1 at a time | greedy, batch of {b} | beam 4, 1 at a time | beam 4, batch of {b} "
          f"| peak RSS | load |")
    print("|---|---|---|---|---|---|---|")
    for e, r in rows.items():
        cells = [f"{n / r[c]['min_s']:.2f}" if c in r else "-" for c in cols]
        rss = max(v["rss"] for v in r.values())
        print(f"| {LABELS[e]} | " + " | ".join(cells) + f" | {rss:.0f} MB | {r[cols[0]]['load_s']:.2f} s |")
    for mine, peer, what in [("tolk", "ct2-f32", "float32"), ("tolk-int8", "ct2-int8", "int8"),
                              ("tolk-int8-fast", "ct2-int8", "int8 fast")]:
        if mine in rows and peer in rows:
            m, p = rows[mine], rows[peer]
            ratios = [f"{p[c]['min_s'] / m[c]['min_s']:.2f}x" for c in cols]
            rss = max(v["rss"] for v in m.values()) / max(v["rss"] for v in p.values())
            print(f"| tolk / CTranslate2, {what} | " + " | ".join(ratios)
                  + f" | {rss:.2f}x | {m[cols[0]]['load_s'] / p[cols[0]]['load_s']:.2f}x |")
    print(f"\nSame text as transformers float32 (one sentence at a time, same beam count), of {n}:\n")
    print(f"| engine | greedy, 1 at a time | greedy, batch of {b} | beam 4, 1 at a time | beam 4, batch of {b} "
          f"| tokens generated, greedy / beam 4, batch of {b} |")
    print("|---|---|---|---|---|---|")
    for e, r in rows.items():
        toks = " / ".join(str(r[(beams, b)]["target_tokens"]) if (beams, b) in r else "-" for beams in (1, 4))
        print(f"| {LABELS[e]} | " + " | ".join(f"{r[c]['same']}/{n}" if c in r else "-" for c in cols)
              + f" | {toks} |")
    if cold:
        print(f"\nDefault user setting: a fresh process per engine, the first {len(article)} sentences, the model's "
              f"own num_beams ({model_beams}), batches of 32; wall time including process start and load, "
              f"best of {args.repeat} processes (tolk: `tolk translate --model DIR --no-summary --format json`, "
              f"default segmentation and guards):\n")
        print(f"| engine | wall time | sentences/s | peak RSS | same as transformers, beam {model_beams} |")
        print("|---|---|---|---|---|")
        for e, (wall, rss, same) in cold.items():
            print(f"| {LABELS[e]} | {wall:.2f} s | {len(article) / wall:.2f} | {rss:.0f} MB | {same} |")
        for mine, peer, what in [("tolk", "ct2-f32", "float32"), ("tolk-int8", "ct2-int8", "int8"),
                              ("tolk-int8-fast", "ct2-int8", "int8 fast")]:
            if mine in cold and peer in cold:
                print(f"\ntolk / CTranslate2, {what}, default setting: {cold[peer][0] / cold[mine][0]:.2f}x")
    if args.save:
        saved["default_setting_reference"] = art_ref
        json.dump(saved, open(args.save, "w", encoding="utf-8"), ensure_ascii=False, indent=1)


def main():
    ap = argparse.ArgumentParser(description="Side-by-side CPU speed of tolk and its peers (see the file's header).")
    ap.add_argument("--peers", default=os.path.join(REPO, "..", "shared", "bench"))
    ap.add_argument("--model-dir", default=os.environ.get("TOLK_BENCH_MODEL", os.path.join(REPO, "target", "bench-model")))
    ap.add_argument("--tolk", default=os.path.join(REPO, "target", "release", "tolk"))
    ap.add_argument("--python", default=os.environ.get("TOLK_BENCH_PYTHON", sys.executable),
                    help="Python with torch, transformers, sentencepiece, ctranslate2 for the peers "
                         "(default: $TOLK_BENCH_PYTHON, else this Python)")
    ap.add_argument("--new", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=None, help="timed runs after the warm-up (default 3; natural: 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="tolk,tolk-int8,tolk-int8-fast,ct2-f32,ct2-int8")
    ap.add_argument("--doc-sentences", type=int, default=1000,
                    help="also time a document of this many sentences (tolk only; 0 to skip)")
    nat = ap.add_argument_group("natural length (real weights)")
    nat.add_argument("--real-model", metavar="DIR", help="HF-layout real-weights model: natural-length mode")
    nat.add_argument("--ct2-f32", metavar="DIR", help="CTranslate2 float32 model (default: DIR-ct2-f32)")
    nat.add_argument("--ct2-int8", metavar="DIR",
                     help="CTranslate2 int8 model (default: DIR/../real-model-work/argos/translate-zh_en-1_9/model)")
    nat.add_argument("--sentences", default=os.path.join(HERE, "zh_sentences.txt"))
    nat.add_argument("--limit", type=int, default=0, help="only the first N sentences (0: all)")
    nat.add_argument("--batch", type=int, default=32)
    nat.add_argument("--article-sentences", type=int, default=20,
                     help="sentences of the default-user-setting run (0 to skip)")
    nat.add_argument("--ref-cache", default=os.path.join(REPO, "target", "bench-natural", "transformers_reference.json"))
    nat.add_argument("--save", metavar="FILE", help="write every figure and translation as JSON")
    args = ap.parse_args()
    if args.repeat is None:
        args.repeat = 2 if args.real_model else 3
    args.cpu = cpu_line(args.threads)
    print(args.cpu, flush=True)
    if args.real_model:
        main_natural(args)
    else:
        main_forced(args)


if __name__ == "__main__":
    main()
