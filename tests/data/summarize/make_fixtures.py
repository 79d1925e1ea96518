"""Regenerates rouge_cases.json and porter_nltk.tsv from the Python reference implementations.

Run from this directory with the fixture virtual environment:
    /work/.venv-fixtures/bin/python make_fixtures.py
Versions used for the committed files: rouge-score 0.1.2, nltk 3.10.4, Python 3.11.
"""

import glob
import json
import random
import re

import nltk
import rouge_score
from nltk.stem import porter
from rouge_score import rouge_scorer

TYPES = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]


def articles():
    out = []
    for path in sorted(glob.glob("articles/*.txt")):
        body, reference = [], []
        target = body
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            if line.startswith("#") or not line:
                continue
            if line == "== reference ==":
                target = reference
                continue
            target.append(line)
        out.append((body, reference))
    return out


def rouge_cases():
    cases = [
        # (references, candidate, use_stemmer)
        (["The quick brown fox jumps over the lazy dog"], "The quick brown dog jumps on the log.", True),
        (["The quick brown fox jumps over the lazy dog"], "The quick brown dog jumps on the log.", False),
        (["the cat sat on the mat"], "a cat was sitting on the mat", True),
        (["Police killed the gunman.\nThe gunman was shot."], "The gunman was killed by police.\nHe was shot dead.", False),
        (["Inflation fell to 1.8% in May; the ECB may cut rates."], "In May, inflation dropped to 1.8 percent.\nThe ECB could cut rates again.", True),
        (["", "Two references, the first one empty."], "The second reference matters.", False),
        (["Only punctuation here!"], "?!?! ... ---", True),
        (["Café naïve Ünïcödé \u212a İstanbul"], "cafe naive unicode K istanbul", False),
        (["a a a b b"], "a b a b a b", False),
        (["w1 w2 w3\nw4 w5\nw1 w4"], "w1 w4 w2\nw3 w5 w1\n\nw2", False),
        (["The ministers were running the governments.", "Ministers run governments."], "The minister runs the government.", True),
        (["Repeated repeated repeated words"], "repeated", True),
    ]
    # Lead-3 of some committed articles against their references, one sentence per line.
    for body, reference in articles()[:4]:
        cases.append((["\n".join(reference)], "\n".join(body[:3]), True))
        cases.append((["\n".join(reference)], "\n".join(body[3:6]), False))
    out = []
    for refs, cand, stem in cases:
        scorer = rouge_scorer.RougeScorer(TYPES, use_stemmer=stem)
        scores = scorer.score_multi(refs, cand) if len(refs) > 1 else scorer.score(refs[0], cand)
        out.append({
            "references": refs,
            "candidate": cand,
            "use_stemmer": stem,
            # repr() gives the shortest string that reads back as the same double.
            "scores": {t: [repr(s.precision), repr(s.recall), repr(s.fmeasure)] for t, s in scores.items()},
        })
    with open("rouge_cases.json", "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


def porter_words():
    stems = ["connect", "relat", "general", "hope", "nation", "happ", "run", "control", "form", "sens",
             "electr", "adjust", "depend", "adopt", "commun", "activ", "effect", "bowdler", "caress",
             "poni", "agre", "plaster", "motor", "conflat", "troubl", "siz", "hop", "fall", "hiss", "fizz",
             "fail", "fil", "sky", "spi", "fly", "tri", "die", "lie", "geo", "theo", "archaeo", "radic",
             "digit", "vietnam", "predic", "oper", "feud", "decis", "callous", "valen", "hesit", "triplic",
             "good", "reviv", "allow", "infer", "airlin", "gyroscop", "defens", "irrit", "replac",
             "homolog", "angular", "prob", "ceas", "roll", "ton", "yy", "by", "enjoy", "news", "proceed"]
    suffixes = ["", "s", "es", "ies", "sses", "ed", "ied", "eed", "ing", "ings", "y", "ly", "ally", "ational",
                "tional", "enci", "anci", "izer", "bli", "abli", "alli", "entli", "eli", "ousli", "ization",
                "ation", "ator", "alism", "iveness", "fulness", "ousness", "aliti", "iviti", "biliti", "fulli",
                "logi", "logy", "icate", "ative", "alize", "iciti", "ical", "ful", "ness", "al", "ance",
                "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "sion", "tion", "ou",
                "ism", "ate", "iti", "ous", "ive", "ize", "e", "ll", "ller", "ingly"]
    words = {s + x for s in stems for x in suffixes}
    rng = random.Random(20261128)
    sample = set(rng.sample(sorted(words), 450))
    for body, reference in articles():
        for line in body + reference:
            sample.update(w for w in re.findall(r"[a-z]+", line.lower()) if len(w) > 3)
    sample.update(["sky", "skies", "dying", "lying", "tying", "news", "innings", "inning", "outings",
                   "outing", "cannings", "canning", "howe", "proceed", "exceed", "succeed", "yyyy"])
    stemmer = porter.PorterStemmer()
    with open("porter_nltk.tsv", "w", encoding="utf-8") as f:
        f.write(f"# word<TAB>stem by nltk {nltk.__version__} PorterStemmer() (NLTK_EXTENSIONS); made by make_fixtures.py\n")
        for w in sorted(sample):
            f.write(f"{w}\t{stemmer.stem(w)}\n")


if __name__ == "__main__":
    rouge_cases()
    porter_words()
