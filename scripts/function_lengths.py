#!/usr/bin/env python3
"""Lines per function body in C++ sources: the measure behind STYLE.md's "a function fits on a screen".

  scripts/function_lengths.py src                 longest functions first
  scripts/function_lengths.py src --max 80 --check exit 1 when a function is longer than 80 lines and
                                                   the comment block above it gives no reason ("long:")

A function is a brace block opened at namespace or class scope after a parameter list `)` (with
const/noexcept/override/-> T/member initialisers between). Its length runs from the first line of its
signature to its closing brace. Lambdas inside a function count toward that function. Comments and
string literals are blanked before scanning, so braces inside them do not count.
"""
import argparse
import os
import re
import sys

REASON = "long:"


def blank_comments_and_strings(text):
    """The text with comments and string/char literals replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = ")" + m.group(1) + '"'
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            # A digit separator (1'000) is not a character literal.
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1 : j - 1]) + (c if j - 1 > i else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


HEADER_KEYWORDS = re.compile(r"\b(namespace|class|struct|union|enum)\b")
CONTROL = re.compile(r"\b(if|for|while|switch|catch|do|else|try)\s*$")


def classify(header):
    """'function', 'scope' (namespace/class body) or 'other' for the text before a '{'."""
    h = header.strip()
    if not h:
        return "other"
    if re.search(r"\bnamespace\b", h) or re.search(r"^(template\s*<.*>\s*)?(class|struct|union)\b", h) or re.search(r"\benum\b", h):
        if ")" not in h or re.search(r"^(template\s*<.*>\s*)?(class|struct|union|enum)\b[^()]*(:[^()]*)?$", h):
            return "scope"
    if h.startswith("extern"):
        return "scope"
    if "=" in h.split("(")[0] and not re.search(r"\boperator\b", h):
        return "other"  # an initialiser: T x = {...}
    # A parameter list, then qualifiers, a trailing return type or member initialisers.
    if re.search(r"\)\s*(const|noexcept|override|final|mutable|volatile|&|&&|\s|->[^{;]*|try)*$", h):
        return "function" if not CONTROL.search(h.split("(")[0]) else "other"
    if re.search(r"\)\s*(const\s*)?(noexcept\s*)?:\s*[\w:]+\s*[({].*$", h, re.S):
        return "function"  # constructor with member initialisers
    if re.search(r"\)\s*:", h) and "(" in h:
        return "function"
    return "other"


def functions(path):
    """(name, first line, last line) of every function body in the file."""
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    text = blank_comments_and_strings(raw)
    # Preprocessor lines are not code the brace matcher should see.
    text = re.sub(r"^[ \t]*#.*$", lambda m: " " * len(m.group(0)), text, flags=re.M)
    found = []
    stack = []  # kinds of the open braces
    last = 0  # start of the current statement header
    line_at = [0]
    for ch in text:
        line_at.append(line_at[-1] + (ch == "\n"))
    i = 0
    while i < len(text):
        c = text[i]
        if c in ";}":
            if c == "}" and stack:
                kind, start, name = stack.pop()
                if kind == "function":
                    found.append((name, line_at[start] + 1, line_at[i] + 1))
            last = i + 1
        elif c == "{":
            inside_function = any(k in ("function", "other") for k, _, _ in stack)
            header = text[last:i]
            kind = "other" if inside_function else classify(header)
            # A member initialiser list's braced init (x_{0}) inside a constructor header.
            if kind == "other" and not inside_function and re.search(r"\)\s*:\s*[^;]*$", header) and "(" in header:
                # Skip past the braced initialiser: it is part of the header.
                depth, j = 0, i
                while j < len(text):
                    if text[j] == "{":
                        depth += 1
                    elif text[j] == "}":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                i = j + 1
                continue
            start = last + (len(header) - len(header.lstrip()))
            name = ""
            m = re.search(r"([\w:~<>=!+\-*/\[\]]+)\s*\(", header)
            if m:
                name = m.group(1)
            stack.append((kind, start, name))
            if kind == "scope":
                last = i + 1
            else:
                last = i + 1
        elif c == ":" and i + 1 < len(text) and text[i + 1] != ":" and (i == 0 or text[i - 1] != ":"):
            # access specifiers and labels at class scope end a header ("public:")
            if stack and stack[-1][0] == "scope" and re.fullmatch(r"\s*(public|private|protected)\s*", text[last:i]):
                last = i + 1
        i += 1
    raw_lines = raw.split("\n")
    results = []
    for name, first, end in found:
        reason = False
        k = first - 2
        while k >= 0 and raw_lines[k].strip().startswith("//"):
            if REASON in raw_lines[k]:
                reason = True
            k -= 1
        # template<...> line above the signature
        if k >= 0 and raw_lines[k].strip().startswith("template"):
            k -= 1
            while k >= 0 and raw_lines[k].strip().startswith("//"):
                if REASON in raw_lines[k]:
                    reason = True
                k -= 1
        results.append((end - first + 1, path, first, name, reason))
    return results


def sources(roots):
    for root in roots:
        if os.path.isfile(root):
            yield root
            continue
        for d, _, files in os.walk(root):
            for f in sorted(files):
                if f.endswith((".cpp", ".hpp", ".h", ".cc", ".cu")):
                    yield os.path.join(d, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--max", type=int, default=80)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    rows = []
    for path in sources(args.roots):
        rows.extend(functions(path))
    rows.sort(reverse=True)
    over = [r for r in rows if r[0] > args.max]
    for length, path, line, name, reason in rows[: args.top]:
        print(f"{length:5d}  {path}:{line}  {name}{'  (reason given)' if reason else ''}")
    print(f"{len(rows)} functions; {len(over)} longer than {args.max} lines"
          f" ({sum(1 for r in over if r[4])} with a reason written above)")
    if args.check:
        bad = [r for r in over if not r[4]]
        for length, path, line, name, _ in bad:
            print(f"error: {path}:{line}: {name} is {length} lines (> {args.max}); split it, or say why above it "
                  f"in a comment containing '{REASON}'", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
