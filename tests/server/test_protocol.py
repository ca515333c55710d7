"""The request parser on its own: whatever arrives, it returns a checked message or raises
ProtocolError with a known code - never anything else (property-based, with hypothesis)."""
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from backend.client import protocol
from backend.client.protocol import EstimateOptions, Limits, ProtocolError, parse_request

LIMITS = Limits()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70)
    | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)

# headers that look like requests, with any value in any field, so the parser gets past its
# first checks and meets wrong types deep inside
field_values = {
    "protocol": st.just(1) | json_values,
    "id": st.text(min_size=1, max_size=20) | json_values,
    "kind": st.sampled_from(protocol.KINDS) | json_values,
    "options": st.dictionaries(st.sampled_from(["detect", "mask", "convention", "normals_dtype",
                                                "focal_35mm", "target", "inputs", "output", "estimate",
                                                "other"]), json_values, max_size=4)
    | json_values,
    "frames": st.lists(st.fixed_dictionaries({"dtype": st.sampled_from(protocol.DTYPES) | json_values,
                                              "shape": st.lists(st.integers(-3, 2 ** 40), max_size=4) | json_values})
                       | st.just({"encoding": "image"}) | json_values, max_size=3) | json_values,
}
headers = st.fixed_dictionaries({}, optional=field_values)


def _check(frames):
    try:
        message = parse_request(frames, LIMITS)
    except ProtocolError as error:
        assert error.code in protocol.ERROR_CODES and str(error) and "\n" not in str(error)
        return None
    assert message.kind in protocol.KINDS and isinstance(message.id, str)
    return message


@settings(max_examples=700, deadline=None)
@given(headers, st.lists(st.binary(max_size=64), max_size=3))
def test_any_request_like_header_is_parsed_or_refused_with_a_code(header, payloads):
    text = json.dumps(header, allow_nan=True).encode()
    message = _check([text, *payloads])
    if message is not None and message.kind == "estimate":
        options = message.options
        assert isinstance(options, EstimateOptions)
        assert type(options.detect) is bool and type(options.mask) is bool
        assert options.focal_35mm is None or math.isfinite(options.focal_35mm)
        assert 1 <= len(message.payloads) <= LIMITS.max_images
    if message is not None and message.kind == "batch":
        options = message.options
        assert isinstance(options, protocol.BatchOptions) and isinstance(options.estimate, EstimateOptions)
        assert options.inputs and all(isinstance(p, str) and os.path.isabs(p) for p in options.inputs)
        assert isinstance(options.output, str) and os.path.isabs(options.output) and not message.payloads


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_any_bytes_are_parsed_or_refused_with_a_code(frames):
    _check(frames)


@pytest.mark.parametrize("depth", [9, 1000, 100_000])
def test_deep_nesting_is_refused_without_recursing(depth):
    nested = b"[" * depth + b"]" * depth
    with pytest.raises(ProtocolError) as caught:
        parse_request([b'{"protocol": 1, "id": "a", "kind": "info", "options": ' + nested + b"}"],
                      Limits(max_header_bytes=1 << 20))
    assert caught.value.code == "bad_message" and "nested" in str(caught.value)


def test_sizes_are_checked_in_exact_integers():
    """3037000500^2 * 3 * 4 overflows int64 (numpy's prod would wrap to a small number)."""
    header = json.dumps({"protocol": 1, "id": "a", "kind": "estimate",
                         "frames": [{"dtype": "float32", "shape": [3037000500, 3037000500, 3]}]})
    with pytest.raises(ProtocolError) as caught:
        parse_request([header.encode(), bytes(48)], LIMITS)
    assert caught.value.code == "too_large"
    assert np.prod([3037000500, 3037000500, 3, 4], dtype=np.int64) < 2 ** 62   # the wrap it avoids


@pytest.mark.parametrize("options, message", [
    ({"detect": "no"}, "true or false"), ({"detect": 1}, "true or false"), ({"mask": None}, "true or false"),
    ({"convention": 0}, "convention"), ({"normals_dtype": "float64"}, "normals_dtype"),
    ({"focal_35mm": True}, "focal length"), ({"focal_35mm": float("nan")}, "focal length"),
    ({"focal_35mm": "50"}, "focal length"), ({"size": 3}, "unknown estimate field"),
])
def test_estimate_options_are_strict(options, message):
    frames = protocol.encode({"id": "r1", "kind": "estimate", "options": options},
                             [np.zeros((20, 30, 3), np.uint8)])
    with pytest.raises(ProtocolError, match=message) as caught:
        parse_request(frames, LIMITS)
    assert caught.value.code == "bad_message"


@pytest.mark.parametrize("options, message", [
    ({"output": "/tmp/out"}, "needs option 'inputs'"), ({"inputs": [], "output": "/tmp/out"}, "needs option 'inputs'"),
    ({"inputs": "/tmp/a.png", "output": "/tmp/out"}, "needs option 'inputs'"),
    ({"inputs": ["/tmp/a.png"]}, "'output' holds None"), ({"inputs": [3], "output": "/tmp/out"}, "not a path"),
    ({"inputs": ["/tmp/a\0.png"], "output": "/tmp/out"}, "not a path"),
    ({"inputs": ["/" + "a" * 5000], "output": "/tmp/out"}, "not a path"),
    ({"inputs": ["photos/a.png"], "output": "/tmp/out"}, "not an absolute path"),
    ({"inputs": ["/tmp/a.png"], "output": "out"}, "'output': 'out' is not an absolute path"),
    ({"inputs": ["/tmp/a.png"], "output": "/tmp/out", "estimate": []}, "must be an object"),
    ({"inputs": ["/tmp/a.png"], "output": "/tmp/out", "estimate": {"detect": 1}}, "true or false"),
    ({"inputs": ["/tmp/a.png"], "output": "/tmp/out", "estimate": {"size": 3}}, "unknown estimate field"),
    ({"inputs": ["/tmp/a.png"], "output": "/tmp/out", "workers": 3}, "unknown batch field"),
])
def test_batch_options_are_strict(options, message):
    with pytest.raises(ProtocolError, match=message) as caught:
        parse_request(protocol.encode({"id": "b1", "kind": "batch", "options": options}), LIMITS)
    assert caught.value.code == "bad_message"


def test_a_batch_request_is_parsed_and_carries_no_images():
    options = {"inputs": ["/data/shoot", "/data/list.txt"], "output": "/data/out",
               "estimate": {"convention": "directx"}}
    message = parse_request(protocol.encode({"id": "b1", "kind": "batch", "options": options}), LIMITS)
    assert message.options == protocol.BatchOptions(("/data/shoot", "/data/list.txt"), "/data/out",
                                                    EstimateOptions(convention="directx"))
    with pytest.raises(ProtocolError, match="carries no payload"):
        parse_request(protocol.encode({"id": "b2", "kind": "batch", "options": options}, [b"file"]), LIMITS)


def test_protocol_true_is_not_version_one():
    with pytest.raises(ProtocolError) as caught:
        parse_request([b'{"protocol": true, "id": "a", "kind": "ping"}'], LIMITS)
    assert caught.value.code == "bad_version"


def test_a_good_request_round_trips():
    options = EstimateOptions(detect=False, convention="directx", focal_35mm=35)
    image = np.zeros((20, 30, 3), np.uint8)
    frames = protocol.encode({"id": "r1", "kind": "estimate", "options": options.to_wire()}, [image, b"file"])
    message = parse_request(frames, LIMITS)
    assert message.options == options and message.payloads[0].shape == (20, 30, 3)
    assert message.payloads[1] == b"file"


def test_request_totals_are_limited():
    options = EstimateOptions()
    protocol.check_request_size([4096 * 4096], LIMITS, options)
    with pytest.raises(ProtocolError, match="per request"):
        protocol.check_request_size([4096 * 4096, 1], LIMITS, options)
    with pytest.raises(ProtocolError, match="reply"):
        protocol.check_request_size([1000], Limits(max_reply_bytes=6999), options)
