"""Hypothesis strategies for the fields of predictions and outcomes, shared by the codec tests.

``numbers`` is the strategy for numeric values: the encoder's tests take ints and floats
(both are valid JSON numbers), the decoder's tests take floats only for the valid side and
add ints among the deliberately doubtful values.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

names = st.text(min_size=1, max_size=8)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


def feature_values(numbers: SearchStrategy) -> SearchStrategy:
    return st.none() | st.integers(-(2**63), 2**63 - 1) | numbers | st.text(max_size=5)


def predictions(numbers: SearchStrategy) -> SearchStrategy:
    """A number, a class label with optional probabilities, or a ranking."""
    return st.one_of(
        numbers,
        st.fixed_dictionaries({"label": names}, optional={"probabilities": st.none() | st.dictionaries(
            names, st.floats(0.0, 1.0), max_size=3)}),
        st.fixed_dictionaries({"group_id": names, "items": st.lists(
            st.fixed_dictionaries({"item_id": names, "score": numbers}), min_size=1, max_size=3)}),
    )


def outcomes(numbers: SearchStrategy) -> SearchStrategy:
    """A number, a label, or relevances of a ranked group."""
    return st.one_of(numbers, st.text(max_size=5), st.fixed_dictionaries(
        {"group_id": names, "relevance": st.dictionaries(names, numbers, min_size=1, max_size=3)}))
