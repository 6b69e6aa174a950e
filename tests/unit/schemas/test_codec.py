"""The wire format: JSON, tagged replies, NaN refused, size limits."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from venom.schemas import (
    BeatRecord,
    Codec,
    CoreReply,
    Decision,
    ErrorReply,
    GatherReport,
    GuardVerdict,
    NonFiniteError,
    Pulse,
    PulseContext,
    SchemaError,
    Telemetry,
    Weights,
)

codec = Codec()


def test_replies_round_trip_through_the_tagged_union() -> None:
    for reply in (
        CoreReply(core="E", score=0.3, details={"anomalies": 1.0}),
        GuardVerdict(guard="cusum", allow=False, severity="critical", reason="alarm"),
        Telemetry(source="plant", values={"temperature": 41.5}),
        ErrorReply(code=500, description="boom"),
    ):
        data = codec.encode(reply)
        assert b'"type":' in data
        assert codec.decode_reply(data) == reply


def test_json_is_readable_by_ordinary_tools() -> None:
    data = codec.encode(Weights())
    assert msgspec.json.decode(data) == {"R": 0.25, "B": 0.25, "E": 0.25, "O": 0.25}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_naming_the_field(bad: float) -> None:
    with pytest.raises(NonFiniteError, match=r"\$\.details\.x"):
        codec.encode(CoreReply(core="E", score=0.1, details={"x": bad}))
    with pytest.raises(NonFiniteError, match=r"\$\.score"):
        codec.encode(CoreReply(core="E", score=bad))


def test_null_is_fine_where_a_field_is_optional() -> None:
    assert codec.encode(Decision(beat=1, action="STEADY"))


def test_nan_literal_on_the_wire_is_refused() -> None:
    with pytest.raises(SchemaError):
        codec.decode_reply(b'{"type":"core","core":"E","score":NaN}')


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"not json", "malformed"),
        (b'{"type":"nope"}', "nope"),
        (b'{"type":"core","score":1}', "core"),
        (b'{"type":"core","core":"X","score":1}', "core"),
        (b'{"type":"core","core":"E","score":"high"}', "score"),
    ],
)
def test_decode_errors_say_what_is_wrong(data: bytes, needle: str) -> None:
    with pytest.raises(SchemaError, match=needle):
        codec.decode_reply(data)


def test_oversized_payload_is_refused_before_parsing() -> None:
    small = Codec(max_bytes=100)
    with pytest.raises(SchemaError, match="exceeds the limit of 100 bytes"):
        small.decode_reply(b" " * 101)


def test_numpy_values_are_converted_explicitly() -> None:
    reply = Telemetry(source="s", values={"a": np.float64(1.5)}, state=np.array([1.0, 2.0]))  # type: ignore[arg-type]
    assert msgspec.json.decode(codec.encode(reply))["state"] == [1.0, 2.0]
    with pytest.raises(NonFiniteError):
        codec.encode(Telemetry(source="s", values={"a": np.float64("nan")}))  # type: ignore[dict-item]


def test_unknown_fields_are_ignored_so_old_readers_survive_new_writers() -> None:
    data = b'{"type":"core","core":"R","score":0.5,"added_in_v9":[1,2]}'
    assert codec.decode_reply(data) == CoreReply(core="R", score=0.5)


def test_canonical_encoding_sorts_keys() -> None:
    data = codec.encode_canonical(
        Pulse(
            beat=1,
            issued_at=0.0,
            deadline=0.0,
            t_lambda=0.004,
            seed=7,
            context=PulseContext(estimates={"b": 1, "a": 2}),
        )
    )
    assert data.index(b'"a"') < data.index(b'"b"')
    assert data.index(b'"beat"') < data.index(b'"context"') < data.index(b'"deadline"')


@given(
    st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False, allow_infinity=False)),
    st.floats(min_value=0, max_value=1),
)
def test_round_trip_property(values: dict[str, float], score: float) -> None:
    reply = CoreReply(core="B", score=score, details=values)
    assert codec.decode_reply(codec.encode(reply)) == reply


def _record(pulse: Pulse, threat: float = 0.5) -> BeatRecord:
    return BeatRecord(
        beat=pulse.beat,
        pulse=pulse,
        replies={
            "regen-core": CoreReply(core="R", score=0.25, details={"a": 1.0}),
            "gate": GuardVerdict(guard="gate", allow=True, metric=0.1),
        },
        report=GatherReport(beat=pulse.beat, expected=["gate", "regen-core"], missing=[]),
        decision=Decision(beat=pulse.beat, action="STEADY", threat=threat),
        trace_id="ab" * 16,
        span_id="cd" * 8,
    )


def test_a_record_reuses_its_pulse_bytes_and_encodes_the_same() -> None:
    codec = Codec()
    pulse = Pulse(beat=7, issued_at=1.5, deadline=1.6, t_lambda=0.004, seed=3, features={"x": 0.1})
    sent = codec.encode_pulse(pulse)
    assert sent == codec.encode(pulse)
    record = _record(pulse)
    assert codec.encode_record(record) == codec.encode(record)
    assert codec.decode(BeatRecord, codec.encode_record(record)) == record
    # Another pulse than the one encoded last: encoded as usual.
    other = msgspec.structs.replace(pulse, beat=8)
    assert codec.encode_record(_record(other)) == codec.encode(_record(other))


def test_a_record_with_a_reused_pulse_still_refuses_non_finite_floats() -> None:
    codec = Codec()
    pulse = Pulse(beat=1, issued_at=1.0, deadline=1.1, t_lambda=0.004, seed=0)
    codec.encode_pulse(pulse)
    with pytest.raises(NonFiniteError, match=r"decision\.threat"):
        codec.encode_record(_record(pulse, threat=math.inf))
