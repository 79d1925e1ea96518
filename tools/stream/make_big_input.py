"""Writes a large Dutch text for measuring tolk's streaming path (peak memory, time), made only of
the repository's own Dutch texts: examples/artikel.nl.txt, the segmenter's seed article and the
tokenizer corpus (one paragraph per five lines). Paragraphs are separated by blank lines; each
repetition is numbered so that the text does not repeat exactly. Deterministic; standard library
only. The output is not committed.

usage (from the repository root):
    python3 tools/stream/make_big_input.py SIZE_MB OUT_FILE [--no-newlines]

--no-newlines writes the same text as one line (paragraph breaks become spaces): the worst case
for block cutting.

Measured with (see docs/formats.md, "Large inputs", for the figures):
    nice -n 10 /usr/bin/time -f '%M KB %e s' target/release/tolk translate \\
        --model tests/fixtures/marian-tiny --num-beams 1 --max-new-tokens 8 \\
        --format jsonl OUT_FILE | wc -c
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def paragraphs():
    out = []
    for rel in ("examples/artikel.nl.txt", "tests/data/segment/nos-belarus-2020-10.nl.txt"):
        with open(os.path.join(REPO, rel), encoding="utf-8") as f:
            text = f.read()
        # The seed article opens with a metadata field; keep only running text.
        if text.startswith("date "):
            text = text.split(" ", 2)[2]
        out.extend(p.strip() for p in text.split("\n\n") if p.strip())
    with open(os.path.join(REPO, "tests/data/tokenizer/corpus.nl.txt"), encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    for i in range(0, len(lines), 5):
        out.append(" ".join(lines[i:i + 5]))
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    one_line = "--no-newlines" in sys.argv
    if len(args) != 2:
        sys.exit(__doc__)
    target = int(float(args[0]) * 1_000_000)
    paras = paragraphs()
    separator = " " if one_line else "\n\n"
    written = 0
    n = 0
    with open(args[1], "w", encoding="utf-8", newline="\n") as f:
        while written < target:
            for p in paras:
                piece = f"Deel {n + 1}. {p}{separator}"
                f.write(piece)
                written += len(piece.encode("utf-8"))
                if written >= target:
                    break
            n += 1
        f.write("Einde.\n")


if __name__ == "__main__":
    main()
