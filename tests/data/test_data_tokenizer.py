"""The BPE tokenizer: lossless round trips, no special tokens from text, token_bytes, save/load, determinism."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.data.prepare import read_shard_texts
from trainer.data.tokenizer import SPECIAL_TOKENS, Tokenizer, train_tokenizer


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_round_trips_arbitrary_unicode(small_tokenizer: Tokenizer, text: str) -> None:
    ids = small_tokenizer.encode(text)
    assert small_tokenizer.decode(ids) == text
    assert small_tokenizer.decode_bytes(ids) == text.encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_are_representable(small_tokenizer: Tokenizer, data: bytes) -> None:
    """The 256 byte tokens come first, so any byte string (valid UTF-8 or not) has a token sequence."""
    assert small_tokenizer.decode_bytes(list(data)) == data
    assert small_tokenizer.decode(list(data)) == data.decode("utf-8", errors="replace")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_token_bytes_sum_to_the_utf8_length(small_tokenizer: Tokenizer, text: str) -> None:
    token_bytes = small_tokenizer.token_bytes()
    ids = small_tokenizer.encode(text, prepend_bos=True)
    assert int(token_bytes[ids].sum()) == len(text.encode("utf-8"))


def test_token_bytes_shape_and_specials(small_tokenizer: Tokenizer) -> None:
    tb = small_tokenizer.token_bytes()
    assert tb.shape == (small_tokenizer.vocab_size,) and str(tb.dtype) == "torch.int32"
    for token_id in small_tokenizer.special_tokens.values():
        assert tb[token_id] == 0
    assert (tb[:256] == 1).all()


def test_special_tokens_are_never_produced_from_plain_text(small_tokenizer: Tokenizer) -> None:
    text = "".join(SPECIAL_TOKENS) + " hello <|bos|> world <|assistant_end|>"
    ids = small_tokenizer.encode(text)
    assert not set(ids) & set(small_tokenizer.special_tokens.values())
    assert small_tokenizer.decode(ids) == text
    batch = small_tokenizer.encode_batch([text] * 4, num_threads=2)
    assert all(not set(b) & set(small_tokenizer.special_tokens.values()) for b in batch)


def test_layout_of_the_vocabulary(small_tokenizer: Tokenizer) -> None:
    assert small_tokenizer.vocab_size == 512
    assert list(small_tokenizer.special_tokens) == list(SPECIAL_TOKENS)
    assert small_tokenizer.bos_id == 512 - 9
    assert small_tokenizer.encode("hi", prepend_bos=True)[0] == small_tokenizer.bos_id


def test_digits_split_in_groups_of_at_most_two(small_tokenizer: Tokenizer) -> None:
    pieces = [small_tokenizer.decode([t]) for t in small_tokenizer.encode("12345 7")]
    assert all(sum(c.isdigit() for c in piece) <= 2 for piece in pieces)


def test_encode_batch_matches_encode(small_tokenizer: Tokenizer, small_data: Path) -> None:
    texts = read_shard_texts(small_data / "shard_00002.parquet")[:200]
    expected = [small_tokenizer.encode(t, prepend_bos=True) for t in texts]
    assert small_tokenizer.encode_batch(texts, prepend_bos=True, num_threads=2) == expected
    assert small_tokenizer.encode_batch(texts, prepend_bos=True, num_threads=1) == expected


def test_save_load_keeps_digest_and_ids(small_tokenizer: Tokenizer, tmp_path: Path) -> None:
    path = small_tokenizer.save(tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == small_tokenizer.sha256
    loaded = Tokenizer.load(tmp_path)
    assert loaded.sha256 == small_tokenizer.sha256
    text = "The capital of Zorbia is Quenta. 12 plus 7 is 19."
    assert loaded.encode(text) == small_tokenizer.encode(text)


def test_training_is_deterministic_to_the_byte(small_data: Path, tmp_path: Path) -> None:
    texts = read_shard_texts(small_data / "shard_00000.parquet")
    a = train_tokenizer(texts, vocab_size=400, max_chars=300_000, progress=False)
    b = train_tokenizer(texts, vocab_size=400, max_chars=300_000, progress=False)
    assert a.save(tmp_path / "a").read_bytes() == b.save(tmp_path / "b").read_bytes()
    c = train_tokenizer(texts, vocab_size=400, max_chars=200_000, progress=False)
    assert c.sha256 != a.sha256


def test_max_chars_and_doc_cap_bound_the_training_text() -> None:
    # one long document, capped at 10 chars: only "aaaaaaaaaa" is seen, so no merge involving "b" exists
    tok = train_tokenizer(["a" * 10 + "b" * 1000], vocab_size=268, max_chars=10_000, doc_cap_chars=10, progress=False)
    assert tok.vocab_size == 268
    assert all(b"b" not in tok.id_to_bytes(i) for i in range(256, 268 - 9))


def test_max_chars_includes_the_crossing_document_whole() -> None:
    from trainer.data.tokenizer import _capped_texts

    docs = ["aaaa", "bbbbbbbbbbbbbbbb" + "x" * 20, "cccc"]
    # caps at 16: 4 chars, then 16 more (total 20 > 10): stop after the crossing document, kept whole
    assert list(_capped_texts(docs, 10, 16, progress=False)) == ["aaaa", "b" * 16]
    # a total that only reaches the limit does not stop the stream (the record stops once it *passes*)
    assert list(_capped_texts(docs, 20, 16, progress=False)) == ["aaaa", "b" * 16, "cccc"]
    # merges: with max_chars=5 the record sees "bbbbbb" whole, so a "bb" merge exists (a cut at 5 chars saw one "b")
    tok = train_tokenizer(["aaaa", "bbbbbb"], vocab_size=256 + 9 + 2, max_chars=5, progress=False)
    learned = {tok.id_to_bytes(i) for i in range(256, 256 + 2)}
    assert b"bb" in learned


def test_too_small_a_corpus_for_the_vocab_is_an_error() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["tiny text"], vocab_size=5000, max_chars=1000, progress=False)


def test_invalid_vocab_size_names_the_field() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["x"], vocab_size=100, max_chars=10, progress=False)


def test_loading_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="format"):
        Tokenizer.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="speedrun data tokenizer"):
        Tokenizer.load(tmp_path / "nowhere")


def test_pickles_for_worker_processes(small_tokenizer: Tokenizer) -> None:
    import pickle

    small_tokenizer.encode_batch(["warm the pool"] * 64, num_threads=2)
    clone = pickle.loads(pickle.dumps(small_tokenizer))
    assert clone.sha256 == small_tokenizer.sha256
    assert clone.encode("12 plus 7 is 19.") == small_tokenizer.encode("12 plus 7 is 19.")
