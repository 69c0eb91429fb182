"""JSON columns are written by orjson, falling back to json.dumps: any value the API
stores reads back as json.dumps would have written it."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from service.db import json_text

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too: orjson refuses them, json.dumps takes them
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # lone surrogates too: orjson refuses them
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),  # keys json.dumps makes text
    max_leaves=20,
)


@given(documents)
def test_what_is_written_reads_as_json_dumps_wrote_it(value):
    written = json_text(value)
    assert json.loads(written) == json.loads(json.dumps(value))


@given(st.dictionaries(st.text(max_size=8), st.integers(min_value=2**64), min_size=1))
def test_integers_past_64_bits_are_kept_whole(value):
    assert json.loads(json_text(value)) == value


def test_the_common_case_is_compact():
    # orjson's output, not json.dumps' (which puts a space after ':' and ',').
    assert json_text({"a": [1, "é"]}) == '{"a":[1,"é"]}'
