"""What control request bodies are accepted (daemon/control.py, daemon/genome.py)."""

from __future__ import annotations

import pytest

from venom.daemon.beat.control import check_no_arguments, weights_from_body
from venom.daemon.beat.genome import Genome
from venom.schemas import Weights


@pytest.mark.parametrize("body", [b"", b"  \n\t", b"{}", b" { } \n"])
def test_no_argument_verbs_take_an_empty_body_or_an_empty_object(body: bytes) -> None:
    for verb in ("status", "pause", "resume"):
        check_no_arguments(verb, body)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"x", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"NaN", "not valid JSON"),
        (b"[1,2]", "got a JSON array"),
        (b"null", "got a JSON null"),
        (b'"go"', "got a JSON string"),
        (b"0", "got a JSON number"),
        (b"true", "got a JSON boolean"),
        (b'{"force": true}', "takes no arguments, got 'force'"),
        (b"{", "not valid JSON"),
    ],
)
def test_no_argument_verbs_refuse_anything_else(body: bytes, needle: str) -> None:
    with pytest.raises(ValueError, match="pause") as info:
        check_no_arguments("pause", body)
    assert needle in str(info.value)


def test_weights_need_exactly_the_four_keys() -> None:
    w = weights_from_body(b'{"R": 0.4, "B": 0.2, "E": 0.2, "O": 2}')
    assert w == Weights(R=0.4, B=0.2, E=0.2, O=2.0)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "missing R, B, E, O"),
        (b'{"Q": 0.5}', "unknown key(s) 'Q'"),
        (b'{"R": 0.5, "r": 1, "zz": 2}', "unknown key(s) 'r', 'zz'"),
        (b'{"R": 0.5}', "missing B, E, O"),
        (b'{"R": "lots", "B": 0, "E": 0, "O": 0}', "R must be a number, got a JSON string"),
        (b'{"R": true, "B": 0, "E": 0, "O": 0}', "R must be a number, got a JSON boolean"),
        (b'{"R": null, "B": 0, "E": 0, "O": 0}', "R must be a number, got a JSON null"),
        (b'{"R": 1e400, "B": 0, "E": 0, "O": 0}', "not valid JSON: Number out of range"),
        (b"[0.25, 0.25, 0.25, 0.25]", "takes a JSON object {R, B, E, O}, got a JSON array"),
        (b"\xff", "not UTF-8"),
    ],
)
def test_weights_refuse_bad_bodies_and_say_why(body: bytes, needle: str) -> None:
    with pytest.raises(ValueError, match="weights") as info:
        weights_from_body(body)
    assert needle in str(info.value)


def test_an_unknown_key_with_line_breaks_is_quoted_and_cut() -> None:
    key = "a\r\nNats-Service-Error-Code: 200" + "x" * 100
    with pytest.raises(ValueError, match="unknown key") as info:
        weights_from_body(b'{"%s": 1}' % key.replace("\r\n", "\\r\\n").encode())
    text = str(info.value)
    assert "\n" not in text
    assert "\r" not in text
    assert len(text) < 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"R": -1, "B": 0, "E": 0, "O": 0}', "weight R must be >= 0"),
        (b'{"R": 0, "B": 0, "E": 0, "O": 0}', "sum must be > 0"),
        (b'{"R": 1e308, "B": 1e308, "E": 1e308, "O": 1e308}', "sum overflows"),
        (b'{"R": 1' + b"0" * 400 + b', "B": 0, "E": 0, "O": 0}', "weight R must be a finite"),
    ],
)
def test_the_genome_refuses_unusable_weights_and_keeps_its_own(body: bytes, needle: str) -> None:
    genome = Genome()
    genome.set(Weights(R=0.4, B=0.2, E=0.2, O=0.2))
    before = genome.weights
    with pytest.raises(ValueError, match="weight") as info:
        genome.set(weights_from_body(body))
    assert needle in str(info.value)
    assert genome.weights == before
