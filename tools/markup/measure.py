#!/usr/bin/env python3
"""How many inline elements land on the words they covered, with a real model.

Each case is one HTML paragraph (two sentences or more) with inline elements; the expected
English words of each element are written beside it, by a person who read the plain
translation (the model sees the text without markup, so the translation does not depend on the
markup). The script translates all cases in one `tolk translate --input-format html` run and
sorts every element into:

  exact    its text is the expected words (case, punctuation and spaces aside)
  overlap  it shares a word with them, but is not them
  wrong    it shares none (or is empty)

and counts the breaches of the hard invariants: an element outside its sentence's translation,
an element empty though its source text was not, an element over part of a sentence that took
the whole translation. Weights are never committed: build the real zh->en model with
../shared/real-model/build.sh, then

    python3 tools/markup/measure.py --tolk target/release/tolk --model /tmp/real-zh-en \
        tools/markup/cases_zh.tsv
    python3 tools/markup/measure.py --tolk target/release/tolk \
        --model tests/fixtures/marian-tiny-trained tools/markup/cases_nl.tsv

`--as docx` measures the same cases as a Word document: each case a paragraph, each inline
element its run properties (b/strong bold, i/em italic, u underline, span a colour, a a
hyperlink), the translated runs read back into elements (a property's consecutive runs are one
element) and counted the same way.

Case files: one case a line, `HTML<TAB>EXPECTED`, EXPECTED being each element's words in the
order of their start tags, separated by `|`, each a list of acceptable answers separated by
`/`; `=` for an element whose words are its source words (a model that copies). Lines starting with `#` are comments. `--show` prints every case's
translation and elements, to write the expectations from.
"""

import argparse
import html
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from html.parser import HTMLParser

INLINE = {"b", "i", "em", "a", "span", "strong", "u"}


class Elements(HTMLParser):
    """The plain text of a paragraph and its inline elements' text ranges, in start order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.elements = []  # [tag, start, end, parent]
        self.stack = []

    def handle_starttag(self, tag, attrs):
        if tag in INLINE:
            parent = self.stack[-1] if self.stack else None
            self.elements.append([tag, len(self.text), None, parent])
            self.stack.append(len(self.elements) - 1)

    def handle_endtag(self, tag):
        if tag in INLINE and self.stack:
            self.elements[self.stack.pop()][2] = len(self.text)

    def handle_data(self, data):
        self.text += data


def parse(fragment):
    p = Elements()
    p.feed(fragment)
    p.close()
    for e in p.elements:
        if e[2] is None:
            e[2] = len(p.text)
    return p.text, p.elements


PROPS = {"b": "<w:b/>", "strong": "<w:b/>", "i": "<w:i/>", "em": "<w:i/>",
         "u": '<w:u w:val="single"/>', "span": '<w:color w:val="C00000"/>'}
W = ('xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
     'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"')


def docx_of(cases):
    """A Word document with one paragraph per case, its inline elements as run properties."""
    paras = []
    for doc, _ in cases:
        text, elements = parse(doc)
        # Cut the text where any element starts or ends; each piece a run.
        cuts = sorted({0, len(text), *[e[1] for e in elements], *[e[2] for e in elements]})
        runs = []
        for a, b in zip(cuts, cuts[1:]):
            if a == b:
                continue
            tags = [e[0] for e in elements if e[1] <= a and b <= e[2]]
            props = "".join(sorted({PROPS[t] for t in tags if t in PROPS}))
            run = f'<w:r>{"<w:rPr>" + props + "</w:rPr>" if props else ""}<w:t xml:space="preserve">{html.escape(text[a:b], quote=False)}</w:t></w:r>'
            if "a" in tags:
                run = f'<w:hyperlink r:id="rId9">{run}</w:hyperlink>'
            runs.append(run)
        # Neighbouring runs in the same link share one hyperlink element.
        paras.append("<w:p>" + "".join(runs).replace("</w:hyperlink><w:hyperlink r:id=\"rId9\">", "") + "</w:p>")
    body = "".join(paras)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", f'<w:document {W}><w:body>{body}</w:body></w:document>')
    return out.getvalue()


def html_of_docx(data, cases):
    """Each translated paragraph as an HTML fragment: a run property's consecutive runs one
    element, in the order of the case's elements' tags."""
    xml = zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml").decode()
    out = []
    for p, (doc, _) in zip(re.findall(r"<w:p>(.*?)</w:p>", xml, flags=re.S), cases):
        _, src_el = parse(doc)
        pieces = []  # (text, set of tags)
        link = False
        for m in re.finditer(r'(<w:hyperlink[^>]*>)|(</w:hyperlink>)|<w:r>(?:<w:rPr>(.*?)</w:rPr>)?<w:t[^>]*>(.*?)</w:t></w:r>', p, flags=re.S):
            if m.group(1):
                link = True
                continue
            if m.group(2):
                link = False
                continue
            props = m.group(3) or ""
            tags = {t for t, v in PROPS.items() if v in props}
            if link:
                tags.add("a")
            pieces.append((html.unescape(m.group(4)), tags))
        # Which source tag names stand for a property (strong and b are the same).
        names = [e[0] for e in src_el]
        text = "".join(t for t, _ in pieces)
        spans = []
        for name in dict.fromkeys(names):
            same = {n for n, v in PROPS.items() if v == PROPS.get(name)} | {name}
            pos = 0
            start = None
            for t, tags in pieces + [("", set())]:
                on = bool(tags & same) and t != ""
                if on and start is None:
                    start = pos
                if not on and start is not None and t != "":
                    spans.append((start, pos, name))
                    start = None
                pos += len(t)
            if start is not None:
                spans.append((start, pos, name))
        spans.sort(key=lambda s: (s[0], -s[1]))
        # Back to HTML, element by element.
        opens = {}
        closes = {}
        for a, b, name in spans:
            opens.setdefault(a, []).append(name)
            closes.setdefault(b, []).insert(0, name)
        frag = ""
        for i, ch in enumerate(text + "\0"):
            for name in closes.get(i, []):
                frag += f"</{name}>"
            for name in opens.get(i, []):
                frag += f"<{name}>"
            if ch != "\0":
                frag += html.escape(ch, quote=False)
        out.append(frag)
    return out


def words(text):
    return [w for w in re.split(r"[^\w]+", text.lower()) if w]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases")
    ap.add_argument("--tolk", default="target/release/tolk")
    ap.add_argument("--model", required=True)
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--extra", default="", help="more tolk options, in one string")
    ap.add_argument("--as", dest="as_", default="html", choices=["html", "docx"],
                    help="translate the cases as an HTML page (default) or a Word document")
    args = ap.parse_args()

    cases = []
    for line in open(args.cases, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        doc, _, expected = line.partition("\t")
        cases.append((doc, [e.strip() for e in expected.split("|")] if expected else []))

    if args.as_ == "docx":
        tmp = tempfile.mkdtemp()
        src, dst = os.path.join(tmp, "cases.docx"), os.path.join(tmp, "cases.en.docx")
        with open(src, "wb") as f:
            f.write(docx_of(cases))
        base = [args.tolk, "translate", src, "--model", args.model, "--quiet", *args.extra.split()]
        run = subprocess.run(base + ["-o", dst], capture_output=True)
        if run.returncode != 0:
            sys.exit(f"tolk failed: {run.stderr.decode()}")
        paragraphs = html_of_docx(open(dst, "rb").read(), cases)
        record = subprocess.run(base + ["--format", "json"], capture_output=True)
    else:
        page = "".join(f"<p>{doc}</p>\n" for doc, _ in cases)
        base = [args.tolk, "translate", "--input-format", "html", "--model", args.model, "--quiet", *args.extra.split()]
        run = subprocess.run(base, input=page.encode(), capture_output=True)
        if run.returncode != 0:
            sys.exit(f"tolk failed: {run.stderr.decode()}")
        paragraphs = re.findall(r"<p>(.*?)</p>", run.stdout.decode(), flags=re.S)
        record = subprocess.run(base + ["--format", "json"], input=page.encode(), capture_output=True)
    if record.returncode != 0:
        sys.exit(f"tolk failed: {record.stderr.decode()}")
    sentences = [s for s in json.loads(record.stdout)["sentences"] if s.get("translation") is not None]
    if len(paragraphs) != len(cases):
        sys.exit(f"{len(paragraphs)} paragraphs came back for {len(cases)} cases")

    counts = {"exact": 0, "overlap": 0, "wrong": 0}
    breaches = {"outside its sentence": 0, "empty": 0, "whole sentence": 0}
    total = 0
    k = 0  # next sentence record
    for (doc, expected), got in zip(cases, paragraphs):
        source, src_el = parse(doc)
        target, tgt_el = parse(got)
        # This paragraph's sentences, in order: their places in source and target.
        places = []
        s_at = t_at = 0
        while k < len(sentences):
            s = sentences[k]
            a = source.find(s["source"], s_at)
            b = target.find(s["translation"], t_at)
            if a < 0 or b < 0:
                break
            s_at, t_at = a + len(s["source"]), b + len(s["translation"])
            places.append(((a, s_at), (b, t_at)))
            k += 1
        if args.show:
            print(f"\n{doc}\n  -> {got}\n  plain: {target}")
        if len(tgt_el) != len(src_el):
            print(f"element count changed: {doc} -> {got}", file=sys.stderr)
            continue
        for n, (se, te) in enumerate(zip(src_el, tgt_el)):
            total += 1
            src_text = source[se[1]:se[2]]
            text = target[te[1]:te[2]]
            want = expected[n] if n < len(expected) else None
            if want == "=":
                want = src_text
            home = next((p for p in places if p[0][0] <= se[1] and se[2] <= p[0][1]), None)
            if home:
                (sa, sb), (ta, tb) = home
                if not (ta <= te[1] and te[2] <= tb):
                    breaches["outside its sentence"] += 1
                if src_text.strip() and not text.strip():
                    breaches["empty"] += 1
                part = se[1] > sa or se[2] < sb
                if part and te[1] <= ta and te[2] >= tb:
                    breaches["whole sentence"] += 1
            options = want.split("/") if want is not None else []
            if want is None:
                verdict = "?"
            elif any(words(text) == words(w) for w in options):
                verdict = "exact"
            elif set(words(text)) & {x for w in options for x in words(w)}:
                verdict = "overlap"
            else:
                verdict = "wrong"
            if verdict in counts:
                counts[verdict] += 1
            if args.show or verdict in ("overlap", "wrong"):
                print(f"  <{se[0]}> {src_text!r} -> {text!r} (expected {want!r}): {verdict}")
    print(
        f"{total} elements: {counts['exact']} exact, {counts['overlap']} overlap, "
        f"{counts['wrong']} wrong; breaches: "
        + ", ".join(f"{v} {k}" for k, v in breaches.items())
    )


if __name__ == "__main__":
    main()
