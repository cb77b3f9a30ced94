"""Shared hypothesis settings and strategies: the OCI distribution-spec grammar, written here independently of
``registry/reference.py`` so that the tests check the code against the spec, not against itself.

Every test uses :data:`PROPERTY` (or :data:`FEW`, a copy with fewer examples): ``derandomize=True`` and no example
database, so a CI run is reproducible and writes nothing to the checkout.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEW = settings(PROPERTY, max_examples=80)  # narrow properties: fewer examples say as much

# -- the spec's grammar (opencontainers/distribution-spec, spec.md "Pulling manifests") -----------------------------
SPEC_NAME = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
SPEC_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
# image-spec descriptor.md: digest ::= algorithm ":" encoded
SPEC_DIGEST = r"[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
NAME_MAX = 255
HEX_LENGTHS = {"sha256": 64, "sha512": 128}


def spec_name(text: str) -> bool:
    """True if ``text`` is a repository name the spec allows (grammar and the 255-character limit)."""
    return len(text) <= NAME_MAX and re.fullmatch(SPEC_NAME, text, re.ASCII) is not None


def spec_tag(text: str) -> bool:
    return re.fullmatch(SPEC_TAG, text, re.ASCII) is not None


def spec_digest(text: str) -> bool:
    """The grammar only; the registry further limits algorithms and their encodings."""
    return re.fullmatch(SPEC_DIGEST, text, re.ASCII) is not None


def supported_digest(text: str) -> bool:
    """A digest the registry must accept: sha256/sha512 with exactly their number of lowercase hex digits."""
    if not spec_digest(text):
        return False
    algorithm, encoded = text.split(":", 1)
    return HEX_LENGTHS.get(algorithm) == len(encoded) and re.fullmatch("[0-9a-f]+", encoded) is not None


_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
# Built from the grammar's parts (``st.from_regex`` of the whole name is slow and mostly over-long).
_component = st.builds(
    lambda first, rest: first + "".join(sep + run for sep, run in rest),
    _alnum,
    st.lists(st.tuples(_separator, _alnum), max_size=3),
)
valid_names = st.lists(_component, min_size=1, max_size=6).map("/".join).filter(lambda n: len(n) <= NAME_MAX)
valid_tags = st.from_regex(rf"\A{SPEC_TAG}\Z", fullmatch=True)


@st.composite
def valid_digests(draw: st.DrawFn) -> str:
    """A supported digest: of real bytes (so it may match stored content) or of random hex."""
    algorithm = draw(st.sampled_from(sorted(HEX_LENGTHS)))
    if draw(st.booleans()):
        return f"{algorithm}:{hashlib.new(algorithm, draw(st.binary(max_size=64))).hexdigest()}"
    length = HEX_LENGTHS[algorithm]
    return f"{algorithm}:" + draw(st.text("0123456789abcdef", min_size=length, max_size=length))


# Text that stays close to the grammar (so that near misses are common), and anything at all. The non-ASCII
# characters: e-acute, superscript two, Arabic-Indic one, KELVIN SIGN, a lone surrogate.
GRAMMAR_ALPHABET = "ab09AZ._-/:+=_~%@ \t\x00\xe9\xb2\u0661\u212a\ud800"
near_grammar_text = st.text(st.sampled_from(GRAMMAR_ALPHABET), max_size=40)
any_text = st.one_of(near_grammar_text, st.text(max_size=300))
# Hostile classics: traversal, encodings, huge lengths.
TRAVERSAL = [
    "..",
    "../etc/passwd",
    "a/../../b",
    "a/./b",
    "%2e%2e",
    "a%2fb",
    "a\\b",
    "\x00",
    "a\nb",
    "/a",
    "a/",
    "a//b",
    "x" * 256,
    "a/" * 200 + "b",
    "sha256:" + "0" * 64,
    "sha256:../../x",
]


# -- JSON values --------------------------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
