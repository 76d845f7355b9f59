import pickle

from atommem_env.spaces import UnicodeText


def test_contains_any_unicode_string_within_length():
    space = UnicodeText(max_length=20)
    assert "Héllo, wörld!\n<tag>" in space
    assert "x" * 21 not in space
    assert b"bytes" not in space
    assert 3 not in space


def test_unbounded_by_default():
    assert "a" * 1_000_000 in UnicodeText()


def test_sample_is_seeded_and_inside_the_space():
    a, b = UnicodeText(max_length=50, seed=3), UnicodeText(max_length=50, seed=3)
    samples = [a.sample() for _ in range(20)]
    assert samples == [b.sample() for _ in range(20)]
    assert all(s in a for s in samples)


def test_equality_and_pickle():
    space = UnicodeText(max_length=7)
    assert pickle.loads(pickle.dumps(space)) == space
    assert space != UnicodeText(max_length=8)
