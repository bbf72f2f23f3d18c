"""Bin-centre maps, binarization and tokenizers, checked against formulas and round trips."""
import numpy as np
import pytest

from gen_jax.data import ByteTokenizer, CharTokenizer, binarize, from_centers, to_centers


@pytest.mark.parametrize("K", [2, 17, 256])
def test_to_centers_matches_formula_and_bins(K):
    k = np.arange(K)
    x = to_centers(k, K)
    assert x.dtype == np.float32
    expected = np.array([(2 * i + 1) / K - 1 for i in range(K)])  # python float64
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)
    lower, upper = -1 + 2 * k / K, -1 + 2 * (k + 1) / K  # bin k of K equal bins on [-1, 1]
    assert np.all((x > lower) & (x < upper))


@pytest.mark.parametrize("K", [2, 17, 256])
def test_from_centers_inverts_and_rounds_to_nearest_bin(K):
    k = np.arange(K)
    np.testing.assert_array_equal(from_centers(to_centers(k, K), K), k)
    half_bin = 1.0 / K
    jitter = np.random.default_rng(0).uniform(-0.99, 0.99, size=K) * half_bin
    np.testing.assert_array_equal(from_centers(to_centers(k, K) + jitter, K), k)
    np.testing.assert_array_equal(from_centers(np.array([-5.0, -1.0, 1.0, 5.0]), K), [0, 0, K - 1, K - 1])


def test_binarize_thresholds_at_128():
    levels = np.arange(256, dtype=np.uint8)
    b = binarize(levels)
    assert b.dtype == np.uint8
    np.testing.assert_array_equal(b, [0] * 128 + [1] * 128)


def test_discretize_rejects_bad_inputs():
    with pytest.raises(ValueError, match="num_levels"):
        to_centers(np.arange(3), 1)
    with pytest.raises(ValueError, match="integers"):
        to_centers(np.array([0.5]), 4)
    with pytest.raises(ValueError, match="integers"):
        binarize(np.array([0.5]))


def test_char_tokenizer_round_trip_and_errors():
    text = "héllo, wörld\n"
    tok = CharTokenizer.from_text(text)
    assert tok.vocab == tuple(sorted(set(text)))
    ids = tok.encode(text)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [tok.vocab.index(c) for c in text])
    assert tok.decode(ids) == text
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("zz")
    with pytest.raises(ValueError, match="ids must lie"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="sorted"):
        CharTokenizer(("b", "a"))


def test_byte_tokenizer_round_trip():
    text = "naïve ☃"
    tok = ByteTokenizer()
    ids = tok.encode(text)
    np.testing.assert_array_equal(ids, list(text.encode("utf-8")))
    assert tok.vocab_size == 256 and tok.decode(ids) == text
    with pytest.raises(ValueError, match="ids must lie"):
        tok.decode([256])
