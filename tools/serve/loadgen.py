#!/usr/bin/env python3
"""Closed-loop load generator for a LibreTranslate-compatible POST /translate endpoint.

Standard library only (threads + http.client keep-alive connections); any Python 3.8+ runs it.

Each of N clients sends one request at a time, waits for the answer, then sends the next one,
until the phase's duration has passed (no new request is started after that; requests already
in flight are waited for and counted) or the phase's request count has been issued.
A request body is JSON:

    {"q": <article>, "source": "zh", "target": "en", "format": "text"}

(`--mode list` sends the article as a list of its paragraphs instead, LibreTranslate's batch
form, and expects a list back.)  Articles are the *.txt files of --articles (default:
articles_zh/ beside this script). Every request, whichever client sends it (warm-up and all
phases included), takes the next article of one global rotation, so requests that follow each
other never carry the same article: LibreTranslate (Argos' CachedTranslation) keeps the paragraphs
of the previous call of a language pair and answers a repeat from that cache in milliseconds,
which would measure the cache, not the engine. With more clients than articles two requests in
flight can carry the same article; a latency "min" of a few ms in the report is the sign of a
cache hit.

Reported per phase: requests/s, sentences/s and source characters/s (over successful requests;
sentences are counted in the source by the Chinese sentence-final marks 。！？), latency
p50/p95/p99/max, error counts by kind, and, given --pid, the server's RSS before the phase, the
peak of VmRSS sampled during it, VmHWM (the kernel's lifetime peak) at its end, and the server's
CPU seconds spent during the phase (user+system, all threads, from /proc/PID/stat).

With --mix every article is sent as text, as HTML and as a bad request in turn (see mixed()):
a soak is --mix over repeated phases, each phase's latency and the server's RSS a point of the
series, e.g. --clients 32,32,32,32,32 --duration 60 --pid PID.

Mixed load (--interactive N): how interactive requests fare beside bulk ones. In every phase,
besides the phase's bulk clients (the --clients count, which may be 0), N interactive clients
each send ONE short sentence, wait for the answer, then sleep --think seconds (default 0.5)
before the next. The sentences come from the articles, split after 。！？.!? (a "." between
digits does not end one), those of 8-60 characters kept, taken in one rotation of their own.
--bulk-sentences K builds each bulk request from K consecutive sentences of the articles
(their paragraph breaks kept, wrapping round at the end) instead of sending whole articles; a
built request counts K sentences. With --requests the count is of bulk requests (the
interactive clients stop when the bulk clients are done), or, in a phase of 0 bulk clients, of
interactive requests. Each phase then reports the two classes apart ("interactive" and
"bulk": requests ok/failed, latency, sentences/s) and the total sentences/s of both, e.g.
interactive latency alone, then beside 1, 8 and 32 clients sending 100-sentence requests:
    python3 tools/serve/loadgen.py --url http://127.0.0.1:5001/translate --clients 0,1,8,32 \
        --interactive 1 --bulk-sentences 100 --duration 60

Examples:
    python3 tools/serve/loadgen.py --url http://127.0.0.1:5001/translate --clients 1,8 \
        --duration 20 --pid 12345 --json /tmp/lt.json
    python3 tools/serve/loadgen.py --clients 32 --requests 200 --warmup 2
    python3 tools/serve/loadgen.py --check          # one request, prints the answer

Only loopback targets are accepted unless --allow-remote is given.
"""

import argparse
import glob
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

SENTENCE_END = re.compile("[。！？]")


def count_sentences(text):
    return len(SENTENCE_END.findall(text))


def load_articles(directory):
    paths = sorted(glob.glob(os.path.join(directory, "*.txt")))
    if not paths:
        sys.exit("no *.txt articles in %s" % directory)
    articles = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            text = f.read().strip()
        if text:
            articles.append(
                {
                    "name": os.path.basename(p),
                    "text": text,
                    "paragraphs": [s for s in text.split("\n") if s.strip()],
                    "sentences": count_sentences(text),
                    "chars": len(text),
                }
            )
    return articles


# A sentence: the shortest run ending in Chinese/Western sentence-final punctuation (。！？.!?; a
# "." between digits or before a digit, as in 3.5, does not end one) or at the paragraph's end,
# with any closing quotes/brackets that follow the mark.
SENTENCE = re.compile(r".+?(?:[。！？!?]+|\.+(?!\d)|$)[”’」』）)\"']*", re.S)
CJK_END = re.compile("[。！？”’」』）]$")


def split_sentences(articles):
    """All sentences of the articles in order, as (sentence, paragraph key) pairs."""
    out = []
    for ai, a in enumerate(articles):
        for pi, para in enumerate(a["paragraphs"]):
            for m in SENTENCE.finditer(para.strip()):
                s = m.group(0).strip()
                if s:
                    out.append((s, (ai, pi)))
    return out


def join_sentences(sentences):
    """Sentences of one paragraph as one string: no space after a Chinese mark, else one."""
    text = ""
    for s in sentences:
        if text and not CJK_END.search(text):
            text += " "
        text += s
    return text


def text_article(name, paragraphs, sentences):
    text = "\n".join(paragraphs)
    return {"name": name, "text": text, "paragraphs": paragraphs, "sentences": sentences, "chars": len(text)}


def interactive_articles(articles, lo=8, hi=60):
    """--interactive: every sentence of lo..hi characters as a one-sentence article."""
    sents = [s for s, _ in split_sentences(articles) if lo <= len(s) <= hi]
    if not sents:
        sys.exit("no sentence of %d-%d characters in the articles for --interactive" % (lo, hi))
    return [dict(text_article("s%d" % i, [s], 1), kind="text") for i, s in enumerate(sents)]


def bulk_articles(articles, k):
    """--bulk-sentences K: article-like dicts of K consecutive sentences each (the source's
    paragraph breaks kept), starting K sentences apart and wrapping round at the end, so
    together they cover every sentence at least once."""
    sents = split_sentences(articles)
    if not sents:
        sys.exit("no sentences in the articles for --bulk-sentences")
    out = []
    for c in range(max(1, -(-len(sents) // k))):
        paragraphs, current, key = [], [], None
        for j in range(k):
            s, skey = sents[(c * k + j) % len(sents)]
            if current and skey != key:
                paragraphs.append(join_sentences(current))
                current = []
            current.append(s)
            key = skey
        paragraphs.append(join_sentences(current))
        out.append(text_article("bulk%d" % c, paragraphs, k))
    return out


# ---------------------------------------------------------------- /proc readers (Linux only)


def read_status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_cpu_seconds(pid):
    """utime+stime of the whole process (all threads), in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class RssSampler(threading.Thread):
    def __init__(self, pid, interval):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kb = None
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            kb = read_status_kb(self.pid, "VmRSS")
            if kb is not None:
                self.samples += 1
                if self.peak_kb is None or kb > self.peak_kb:
                    self.peak_kb = kb
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


# ---------------------------------------------------------------- HTTP client


class Client:
    def __init__(self, url, timeout):
        self.url = url
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        u = self.url
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(u.hostname, u.port or (443 if u.scheme == "https" else 80), timeout=self.timeout)
        # Connect now and disable Nagle's algorithm, as urllib3/requests do: http.client writes
        # the headers and the body separately, and Nagle + delayed ACK would add ~40 ms a request.
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, body):
        """Returns (status, body_bytes). Reconnects once if a kept-alive connection was closed."""
        path = self.url.path or "/"
        if self.url.query:
            path += "?" + self.url.query
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 1:
                    raise
            except Exception:
                self.close()
                raise
        raise RuntimeError("unreachable")

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


def mixed(articles):
    """--mix: every article as text, as HTML (its paragraphs in <p>, the first words in <b>),
    and a bad request of three kinds in turn (not JSON, no q, an unknown target), which the
    server must refuse with 400."""
    out = []
    for i, a in enumerate(articles):
        out.append(dict(a, kind="text"))
        html = "".join("<p><b>%s</b>%s</p>" % (p[:4], p[4:]) for p in a["paragraphs"])
        out.append(dict(a, kind="html", html=html))
        out.append(dict(a, kind="bad", bad=i % 3, sentences=0, chars=0))
    return out


def make_body(article, args):
    kind = article.get("kind", "text")
    if kind == "bad":
        if article["bad"] == 0:
            return b'{"q": "not json'
        if article["bad"] == 1:
            return json.dumps({"source": args.source, "target": args.target}).encode("utf-8")
        return json.dumps({"q": article["text"], "source": args.source, "target": "xx"}).encode("utf-8")
    q = article["paragraphs"] if args.mode == "list" else article["text"]
    fmt = args.format
    if kind == "html":
        q, fmt = article["html"], "html"
    payload = {"q": q, "source": args.source, "target": args.target, "format": fmt}
    if args.api_key is not None:
        payload["api_key"] = args.api_key
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def check_answer(status, data, article, args):
    """Returns None when the answer is a good translation (or the refusal a bad request must
    get), else an error kind."""
    if article.get("kind") == "bad":
        return None if status == 400 else "bad_request_answered_%d" % status
    if status != 200:
        return "http_%d" % status
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "bad_json"
    if not isinstance(obj, dict) or "translatedText" not in obj:
        return "no_translatedText"
    t = obj["translatedText"]
    if args.mode == "list":
        if not isinstance(t, list) or len(t) != len(article["paragraphs"]):
            return "bad_list"
        if not all(isinstance(x, str) for x in t):
            return "bad_list"
    elif not isinstance(t, str) or not t.strip():
        return "empty_translation"
    elif article.get("kind") == "html" and (t.count("<p>") != len(article["paragraphs"]) or "<b>" not in t):
        return "html_markup_lost"
    return None


# ---------------------------------------------------------------- one phase


def percentile(sorted_values, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def run_phase(n_clients, articles, bodies, args, duration=None, max_requests=None, record=True,
              n_interactive=0, iarticles=None, ibodies=None):
    """n_clients bulk clients over articles/bodies and, with n_interactive, that many interactive
    clients over iarticles/ibodies (one request, then --think seconds of sleep, in a loop). With
    max_requests the count is of bulk requests, or, with no bulk client, of interactive ones."""
    lock = threading.Lock()
    issued = [0]
    results = []  # (latency_s, ok, err_kind, article_index, end_time, class)
    error_samples = {}
    bulk_done = threading.Event()  # the bulk clients have all finished: interactive ones stop
    start = time.monotonic()
    deadline = start + duration if duration is not None else None

    def take_ticket():
        """Next article index, or None when the phase is over."""
        with lock:
            if max_requests is not None and issued[0] >= max_requests:
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None
            issued[0] += 1
            idx = args.cursor[0] % len(articles)
            args.cursor[0] += 1
            return idx

    def take_interactive_ticket():
        """Next interactive sentence index, or None when the phase is over."""
        with lock:
            if bulk_done.is_set():
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if n_clients == 0 and max_requests is not None:
                if issued[0] >= max_requests:
                    return None
                issued[0] += 1
            idx = args.icursor[0] % len(iarticles)
            args.icursor[0] += 1
            return idx

    def worker(ci, cls, ticket, arts, bods):
        client = Client(args.parsed_url, args.timeout)
        try:
            while True:
                idx = ticket()
                if idx is None:
                    break
                art = arts[idx]
                t0 = time.monotonic()
                err = None
                data = b""
                try:
                    status, data = client.post(bods[idx])
                    err = check_answer(status, data, art, args)
                except (TimeoutError, OSError) as e:  # socket.timeout is a TimeoutError/OSError
                    err = "timeout" if "timed out" in str(e) else "conn_" + type(e).__name__
                except Exception as e:  # noqa: BLE001 - counted, never fatal
                    err = "exc_" + type(e).__name__
                t1 = time.monotonic()
                with lock:
                    results.append((t1 - t0, err is None, err, idx, t1, cls))
                    if err is not None and err not in error_samples:
                        error_samples[err] = data[:300].decode("utf-8", "replace")
                if cls == "interactive" and args.think > 0:
                    pause = args.think
                    if deadline is not None:
                        pause = min(pause, max(deadline - time.monotonic(), 0.0))
                    bulk_done.wait(pause)  # woken early when the bulk clients are done
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i, "bulk", take_ticket, articles, bodies), daemon=True)
               for i in range(n_clients)]
    ithreads = [threading.Thread(target=worker, args=(i, "interactive", take_interactive_ticket, iarticles, ibodies),
                                 daemon=True) for i in range(n_interactive)]
    for t in threads + ithreads:
        t.start()
    for t in threads:
        t.join()
    if n_clients > 0:
        bulk_done.set()
    for t in ithreads:
        t.join()
    end = max((r[4] for r in results), default=time.monotonic())
    if not record:
        return None

    elapsed = max(end - start, 1e-9)
    arts_of = {"bulk": articles, "interactive": iarticles}
    r = summarize(results, arts_of, elapsed)
    out = {"clients": n_clients, "elapsed_s": round(elapsed, 3)}
    for k, v in r.items():
        out[k] = v
        if k == "errors":
            out["error_samples"] = error_samples
    if n_interactive:
        # The fields above are over both classes; "classes" has them apart.
        out["interactive_clients"] = n_interactive
        out["total_sentences_per_s"] = r["sentences_per_s"]
        out["classes"] = {cls: summarize([x for x in results if x[5] == cls], arts_of, elapsed)
                          for cls in ("interactive", "bulk")}
    return out


def summarize(results, arts_of, elapsed):
    ms = lambda v: None if v is None else round(v * 1000.0, 1)  # noqa: E731
    ok = [r for r in results if r[1]]
    lat = sorted(r[0] for r in ok)
    errors = {}
    for r in results:
        if not r[1]:
            errors[r[2]] = errors.get(r[2], 0) + 1
    sentences = sum(arts_of[r[5]][r[3]]["sentences"] for r in ok)
    chars = sum(arts_of[r[5]][r[3]]["chars"] for r in ok)
    return {
        "requests_ok": len(ok),
        "requests_failed": len(results) - len(ok),
        "errors": errors,
        "requests_per_s": round(len(ok) / elapsed, 4),
        "sentences_per_s": round(sentences / elapsed, 3),
        "source_chars_per_s": round(chars / elapsed, 1),
        "latency_ms": {
            "p50": ms(percentile(lat, 50)),
            "p95": ms(percentile(lat, 95)),
            "p99": ms(percentile(lat, 99)),
            "mean": ms(sum(lat) / len(lat)) if lat else None,
            "min": ms(lat[0]) if lat else None,
            "max": ms(lat[-1]) if lat else None,
        },
    }


def fmt_kb(kb):
    return "n/a" if kb is None else "%.1f MiB" % (kb / 1024.0)


def print_phase(r):
    if "classes" in r:
        print_mixed_phase(r)
        return
    lat = r["latency_ms"]
    print(
        "clients=%-3d  %6.1fs  ok=%-5d failed=%-4d  %.3f req/s  %.2f sent/s  %.0f chars/s"
        % (r["clients"], r["elapsed_s"], r["requests_ok"], r["requests_failed"],
           r["requests_per_s"], r["sentences_per_s"], r["source_chars_per_s"])
    )
    print(
        "             latency ms: p50=%s p95=%s p99=%s mean=%s max=%s"
        % (lat["p50"], lat["p95"], lat["p99"], lat["mean"], lat["max"])
    )
    print_errors_and_server(r)


def print_errors_and_server(r):
    if r["errors"]:
        print("             errors: %s" % json.dumps(r["errors"]))
        for k, v in r["error_samples"].items():
            print("               %s: %r" % (k, v[:160]))
    if "server" in r:
        s = r["server"]
        print(
            "             server pid %s: rss before %s, peak sampled %s, VmHWM %s, cpu %.1fs (%.2f cores)"
            % (s["pid"], fmt_kb(s["rss_before_kb"]), fmt_kb(s["rss_peak_sampled_kb"]),
               fmt_kb(s["vm_hwm_kb"]), s["cpu_s"] or 0.0, s["cpu_cores_avg"] or 0.0)
        )
    sys.stdout.flush()


def print_mixed_phase(r):
    """A phase with interactive clients: totals, then each class on its own lines."""
    print(
        "clients=%-3d bulk + %d interactive  %6.1fs  ok=%-5d failed=%-4d  %.2f sent/s in all  %.0f chars/s"
        % (r["clients"], r["interactive_clients"], r["elapsed_s"], r["requests_ok"], r["requests_failed"],
           r["total_sentences_per_s"], r["source_chars_per_s"])
    )
    for cls in ("interactive", "bulk"):
        c = r["classes"][cls]
        lat = c["latency_ms"]
        print(
            "             %-11s ok=%-5d failed=%-4d  %.3f req/s  %.2f sent/s  latency ms: p50=%s p95=%s p99=%s max=%s"
            % (cls, c["requests_ok"], c["requests_failed"], c["requests_per_s"], c["sentences_per_s"],
               lat["p50"], lat["p95"], lat["p99"], lat["max"])
        )
    print_errors_and_server(r)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:5001/translate")
    ap.add_argument("--articles", default=os.path.join(here, "articles_zh"))
    ap.add_argument("--clients", default="1",
                    help="comma-separated list, one phase each (e.g. 1,8,32); with --interactive the bulk "
                         "clients, 0 allowed")
    ap.add_argument("--interactive", type=int, default=0, metavar="N",
                    help="N interactive clients in every phase besides the bulk ones, each sending one "
                         "short sentence (8-60 characters) and sleeping --think seconds after the answer")
    ap.add_argument("--think", type=float, default=0.5,
                    help="seconds an interactive client sleeps after each answer (default 0.5)")
    ap.add_argument("--bulk-sentences", type=int, default=0, metavar="K",
                    help="build each bulk request from K consecutive sentences of the articles "
                         "(default 0: the articles as they are)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--duration", type=float, help="seconds per phase (default 20)")
    g.add_argument("--requests", type=int, help="requests per phase (instead of --duration)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="requests sent (one client) before the first phase, not recorded")
    ap.add_argument("--source", default="zh")
    ap.add_argument("--target", default="en")
    ap.add_argument("--format", default="text", choices=["text", "html"])
    ap.add_argument("--mode", default="string", choices=["string", "list"],
                    help="q as the whole article (string) or as a list of its paragraphs")
    ap.add_argument("--mix", action="store_true",
                    help="each article as text, as HTML, and a bad request that must get 400 (a soak)")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    ap.add_argument("--pid", type=int, help="server PID: RSS and CPU are read from /proc/PID")
    ap.add_argument("--rss-interval", type=float, default=0.2, help="VmRSS sampling period, seconds")
    ap.add_argument("--max-duration", type=float, default=900.0,
                    help="hard cap on one phase's --duration, seconds (safety bound)")
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--label", default="", help="free text stored in the JSON (e.g. server name)")
    ap.add_argument("--check", action="store_true", help="send one request, print the answer, exit")
    ap.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")
    args = ap.parse_args()

    args.parsed_url = urllib.parse.urlsplit(args.url)
    args.cursor = [0]  # global article rotation, shared by all clients, the warm-up and all phases
    host = args.parsed_url.hostname or ""
    if not args.allow_remote and not (host == "localhost" or host.startswith("127.") or host == "::1"):
        sys.exit("refusing non-loopback target %r (use --allow-remote)" % host)

    if args.interactive < 0 or args.bulk_sentences < 0 or args.think < 0:
        sys.exit("--interactive, --bulk-sentences and --think must not be negative")
    phases = [int(x) for x in args.clients.split(",") if x.strip()]
    if any(n < 0 for n in phases):
        sys.exit("--clients must not be negative")
    if args.interactive == 0 and 0 in phases:
        sys.exit("a phase of 0 clients needs --interactive")

    articles = load_articles(args.articles)
    iarticles = ibodies = None
    if args.interactive > 0:
        iarticles = interactive_articles(articles)  # from the source articles, never --mix'ed
        ibodies = [make_body(a, args) for a in iarticles]
    if args.bulk_sentences > 0:
        articles = bulk_articles(articles, args.bulk_sentences)
    if args.mix:
        articles = mixed(articles)
    bodies = [make_body(a, args) for a in articles]
    print("%d %s, %d sentences, %d chars in all; target %s"
          % (len(articles), "articles" if args.bulk_sentences == 0 else "bulk requests of %d sentences"
             % args.bulk_sentences, sum(a["sentences"] for a in articles), sum(a["chars"] for a in articles),
             args.url))
    if iarticles:
        print("interactive: %d client(s), %d sentences of 8-60 chars in rotation, think %.2fs"
              % (args.interactive, len(iarticles), args.think))

    if args.check:
        c = Client(args.parsed_url, args.timeout)
        t0 = time.monotonic()
        status, data = c.post(bodies[0])
        dt = time.monotonic() - t0
        print("HTTP %d in %.2fs" % (status, dt))
        print(data.decode("utf-8", "replace"))
        err = check_answer(status, data, articles[0], args)
        sys.exit(0 if err is None else "bad answer: %s" % err)

    if args.warmup > 0:
        print("warm-up: %d request(s)" % args.warmup)
        run_phase(1, articles, bodies, args, max_requests=args.warmup, record=False)

    duration = None
    if args.requests is None:
        duration = min(args.duration if args.duration is not None else 20.0, args.max_duration)

    out = {"label": args.label, "url": args.url, "mode": args.mode, "format": args.format,
           "source": args.source, "target": args.target, "articles": len(articles),
           "article_sentences": [a["sentences"] for a in articles],
           "duration_s": duration, "requests": args.requests, "started": time.time(), "phases": []}
    if args.interactive > 0 or args.bulk_sentences > 0:
        out["bulk_sentences"] = args.bulk_sentences
    if args.interactive > 0:
        out["interactive"] = args.interactive
        out["think_s"] = args.think
        out["interactive_sentences"] = len(iarticles)
    args.icursor = [0]  # rotation of the interactive sentences, over all phases
    for n in phases:
        sampler = None
        before_kb = cpu0 = None
        if args.pid:
            before_kb = read_status_kb(args.pid, "VmRSS")
            cpu0 = read_cpu_seconds(args.pid)
            sampler = RssSampler(args.pid, args.rss_interval)
            sampler.start()
        r = run_phase(n, articles, bodies, args, duration=duration, max_requests=args.requests,
                      n_interactive=args.interactive, iarticles=iarticles, ibodies=ibodies)
        if sampler is not None:
            sampler.stop()
            cpu1 = read_cpu_seconds(args.pid)
            cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
            r["server"] = {
                "pid": args.pid,
                "rss_before_kb": before_kb,
                "rss_peak_sampled_kb": sampler.peak_kb,
                "rss_samples": sampler.samples,
                "vm_hwm_kb": read_status_kb(args.pid, "VmHWM"),
                "cpu_s": None if cpu is None else round(cpu, 2),
                "cpu_cores_avg": None if cpu is None else round(cpu / r["elapsed_s"], 2),
                "cpu_s_per_request": None if cpu is None or not r["requests_ok"] else round(cpu / r["requests_ok"], 3),
            }
        print_phase(r)
        out["phases"].append(r)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2, ensure_ascii=False)
        print("results written to %s" % args.json)
    failed = sum(p["requests_failed"] for p in out["phases"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
