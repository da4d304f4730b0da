"""The byte-level BPE tokenizer: rustbpe trains it, tiktoken encodes with it.

Vocabulary = 256 byte tokens + learned merges + 9 special tokens (ids after the merges). The split
regex is GPT-4's with digits in groups of 1-2. ``save`` writes one canonical JSON file
(``tokenizer.json``: the pattern, the token bytes in rank order, the special tokens), so the same
training input gives the same file bytes and the same ``sha256`` on any machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_FORMAT = "speedrun-bpe-v1"
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
SPECIAL_TOKENS = (
    "<|bos|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
)
DEFAULT_VOCAB_SIZE = 32768


class Tokenizer:
    """A trained BPE: ``encode``/``encode_batch`` (tiktoken), ``decode``, ``token_bytes``, save/load."""

    def __init__(self, ranks: Sequence[bytes], *, pattern: str = SPLIT_PATTERN) -> None:
        import tiktoken

        if len(ranks) < 256:
            raise ValueError(f"a byte-level BPE needs at least the 256 byte tokens, got {len(ranks)} ranks")
        if len(set(ranks)) != len(ranks):
            raise ValueError("tokenizer ranks contain a duplicate token")
        self._ranks = [bytes(r) for r in ranks]
        self.pattern = pattern
        n = len(self._ranks)
        self.special_tokens: dict[str, int] = {name: n + i for i, name in enumerate(SPECIAL_TOKENS)}
        self.vocab_size = n + len(SPECIAL_TOKENS)
        self.bos_id = self.special_tokens["<|bos|>"]
        self._enc = tiktoken.Encoding(
            name="speedrun-bpe",
            pat_str=pattern,
            mergeable_ranks={token: rank for rank, token in enumerate(self._ranks)},
            special_tokens=self.special_tokens,
        )
        self._pool_lock = threading.Lock()
        self._executors: dict[int, ThreadPoolExecutor] = {}
        self._json = self._to_json()
        self.sha256 = hashlib.sha256(self._json.encode()).hexdigest()

    # -- encoding ----------------------------------------------------------------------------------

    def encode(self, text: str, *, prepend_bos: bool = False) -> list[int]:
        """Token ids of ``text``; special-token strings in ``text`` are encoded as plain text."""
        ids = self._enc.encode_ordinary(text)
        return [self.bos_id, *ids] if prepend_bos else ids

    def encode_batch(
        self, texts: Sequence[str], *, prepend_bos: bool = False, num_threads: int | None = None
    ) -> list[list[int]]:
        """``encode`` of each text, on ``num_threads`` threads (default: the CPU count).

        tiktoken releases the GIL while encoding; the texts are split into one contiguous chunk per
        thread of a pool kept by this tokenizer (one task per chunk, not per text).
        """
        threads = num_threads if num_threads is not None else (os.cpu_count() or 1)
        if threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {threads}")
        texts = list(texts)
        threads = min(threads, max(1, len(texts) // 16))  # small batches are not worth a thread hop
        if threads == 1:
            batch = self._encode_chunk(texts)
        else:
            n = len(texts)
            chunks = [texts[i * n // threads : (i + 1) * n // threads] for i in range(threads)]
            batch = [ids for part in self._pool(threads).map(self._encode_chunk, chunks) for ids in part]
        if prepend_bos:
            bos = self.bos_id
            for ids in batch:
                ids.insert(0, bos)
        return batch

    def _encode_chunk(self, texts: list[str]) -> list[list[int]]:
        encode = self._enc.encode_ordinary
        return [encode(text) for text in texts]

    def _pool(self, threads: int) -> ThreadPoolExecutor:
        with self._pool_lock:  # one pool per thread count, never shut down under a concurrent caller
            if threads not in self._executors:
                self._executors[threads] = ThreadPoolExecutor(threads, thread_name_prefix="speedrun-tokenize")
            return self._executors[threads]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (invalid UTF-8 from a partial sequence becomes U+FFFD)."""
        return self._enc.decode(list(ids))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self._enc.decode_bytes(list(ids))

    def id_to_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(token_id)

    def token_bytes(self) -> torch.Tensor:
        """int32 [vocab_size]: the UTF-8 byte length of each token (0 for the special tokens)."""
        import torch

        lengths = [len(token) for token in self._ranks] + [0] * len(SPECIAL_TOKENS)
        return torch.tensor(lengths, dtype=torch.int32)

    # -- persistence -------------------------------------------------------------------------------

    def _to_json(self) -> str:
        body = {
            "format": TOKENIZER_FORMAT,
            "pattern": self.pattern,
            "special_tokens": list(SPECIAL_TOKENS),
            "ranks_base64": [base64.b64encode(token).decode("ascii") for token in self._ranks],
        }
        return json.dumps(body, indent=0, sort_keys=True) + "\n"

    def save(self, directory: Path | str) -> Path:
        """Write ``directory/tokenizer.json`` atomically and return its path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        path = out / TOKENIZER_FILE
        tmp = path.with_name(f".{TOKENIZER_FILE}.tmp-{os.getpid()}")
        tmp.write_text(self._json)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: Path | str) -> Tokenizer:
        """Load from a directory holding ``tokenizer.json`` (or the file itself)."""
        path = Path(directory)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer at {path}: train one with `speedrun data tokenizer`")
        try:
            body: Any = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a valid tokenizer file: {e}") from None
        if not isinstance(body, dict) or body.get("format") != TOKENIZER_FORMAT:
            raise ValueError(f"{path}: tokenizer format is not {TOKENIZER_FORMAT!r}")
        if body.get("special_tokens") != list(SPECIAL_TOKENS):
            raise ValueError(f"{path}: unexpected special tokens {body.get('special_tokens')!r}")
        try:
            ranks = [base64.b64decode(s, validate=True) for s in body["ranks_base64"]]
            pattern = body["pattern"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: corrupt tokenizer ranks: {e}") from None
        return cls(ranks, pattern=pattern)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (spawned workers), without the thread pool
        return (_rebuild, (self._ranks, self.pattern))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, sha256={self.sha256[:12]})"


def _rebuild(ranks: list[bytes], pattern: str) -> Tokenizer:
    return Tokenizer(ranks, pattern=pattern)


def _capped_texts(texts: Iterable[str], max_chars: int, doc_cap_chars: int, progress: bool) -> Iterator[str]:
    from tqdm import tqdm

    bar = tqdm(
        total=max_chars, unit="char", unit_scale=True, desc="tokenizer: reading", disable=not progress, file=sys.stderr
    )
    seen = 0
    try:
        for text in texts:
            doc = text[:doc_cap_chars]
            seen += len(doc)
            bar.update(len(doc))
            yield doc
            if seen > max_chars:  # the record's rule: the document that crosses the limit is included whole
                return
    finally:
        bar.close()


def train_tokenizer(
    texts: Iterable[str], *, vocab_size: int, max_chars: int, doc_cap_chars: int = 10_000, progress: bool = True
) -> Tokenizer:
    """Train a BPE on whole documents of ``texts``, each cut to ``doc_cap_chars``, until more than ``max_chars``.

    As the record: capped documents are yielded whole and the stream stops right after the running
    total passes ``max_chars`` (the document that crosses the limit is included whole, never cut).

    ``vocab_size`` includes the 256 byte tokens and the 9 special tokens. Raises ValueError if the
    text is too small to learn that many merges.
    """
    import rustbpe

    min_vocab = 256 + len(SPECIAL_TOKENS)
    if vocab_size < min_vocab:
        raise ValueError(f"vocab_size must be >= {min_vocab} (256 bytes + 9 special tokens), got {vocab_size}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    if doc_cap_chars < 1:
        raise ValueError(f"doc_cap_chars must be >= 1, got {doc_cap_chars}")
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(
        _capped_texts(texts, max_chars, doc_cap_chars, progress),
        vocab_size - len(SPECIAL_TOKENS),
        pattern=SPLIT_PATTERN,
    )
    pairs = sorted(bpe.get_mergeable_ranks(), key=lambda pair: pair[1])
    if [rank for _, rank in pairs] != list(range(len(pairs))):
        raise RuntimeError("rustbpe returned non-contiguous ranks")
    tokenizer = Tokenizer([bytes(token) for token, _ in pairs], pattern=SPLIT_PATTERN)
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(
            f"the training text supports only {tokenizer.vocab_size} tokens, not vocab_size={vocab_size}: "
            "give more text (max_chars / more shards) or a smaller vocab_size"
        )
    if progress:
        print(f"tokenizer: vocab {tokenizer.vocab_size}, sha256 {tokenizer.sha256[:12]}", file=sys.stderr)
    return tokenizer
