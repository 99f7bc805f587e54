#!/usr/bin/env python3
"""Counts the crate's public items per top-level module, as rustdoc documents them.

Reads the HTML that `cargo doc --no-deps --all-features` writes (DOC_DIR, default
`<target>/doc/kafka_event_bus`): `all.html` lists every public item once, under the path where rustdoc
documents it (re-exports of items from private modules are inlined there); every directory with an
`index.html` is a public module; on each type's page the inherent methods are the `method.*` anchors
before the trait implementations, and on a trait's page its required and provided methods.

Prints one row per top-level module (`(root)` for items at the crate root) and a total.
"""

import os
import re
import sys
from collections import Counter, defaultdict

KINDS = ["mod", "struct", "enum", "trait", "fn", "method", "type", "const", "macro", "static"]
PAGE_KIND = {
    "struct": "struct",
    "enum": "enum",
    "trait": "trait",
    "fn": "fn",
    "type": "type",
    "constant": "const",
    "macro": "macro",
    "static": "static",
    "union": "struct",
}


def top_module(rel_path):
    parts = rel_path.split("/")
    return parts[0] if len(parts) > 1 else "(root)"


def inherent_methods(html, kind):
    """Inherent (or, for a trait, declared) methods on one item's page."""
    if kind == "trait":
        end = html.find('id="implementors"')
        body = html if end < 0 else html[:end]
        return len(set(re.findall(r'id="(?:ty)?method\.([A-Za-z0-9_]+)"', body)))
    start = html.find('id="implementations-list"')
    if start < 0:
        return 0
    ends = [i for i in (html.find(m, start) for m in (
        'id="trait-implementations"', 'id="synthetic-implementations"', 'id="blanket-implementations"'))
        if i >= 0]
    body = html[start:min(ends)] if ends else html[start:]
    return len(set(re.findall(r'id="method\.([A-Za-z0-9_]+)"', body)))


def main():
    doc_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "doc", "kafka_event_bus")
    all_html = os.path.join(doc_dir, "all.html")
    if not os.path.exists(all_html):
        sys.exit(f"no {all_html}: run `cargo doc --no-deps --all-features` first")
    counts = defaultdict(Counter)

    # Public modules: every directory rustdoc wrote an index.html into (the crate root aside).
    for dirpath, _dirs, files in os.walk(doc_dir):
        rel = os.path.relpath(dirpath, doc_dir)
        if rel != "." and "index.html" in files:
            counts[top_module(rel + "/index.html")]["mod"] += 1

    text = open(all_html, encoding="utf-8").read()
    pages = sorted(set(re.findall(r'<a href="([^"#]+\.html)"', text)))
    for page in pages:
        name = os.path.basename(page)
        kind = PAGE_KIND.get(name.split(".", 1)[0])
        if kind is None:
            continue
        module = top_module(page)
        counts[module][kind] += 1
        if kind in ("struct", "enum", "trait"):
            html = open(os.path.join(doc_dir, page), encoding="utf-8").read()
            counts[module]["method"] += inherent_methods(html, kind)

    used = [k for k in KINDS if any(c[k] for c in counts.values())]
    header = ["module"] + used + ["total"]
    rows = []
    for module in sorted(counts, key=lambda m: (m != "(root)", m)):
        c = counts[module]
        rows.append([module] + [str(c[k]) for k in used] + [str(sum(c[k] for k in used))])
    total = Counter()
    for c in counts.values():
        total.update(c)
    rows.append(["total"] + [str(total[k]) for k in used] + [str(sum(total[k] for k in used))])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))))


if __name__ == "__main__":
    main()
