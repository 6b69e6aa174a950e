"""JSON encoding and decoding of venom messages, built once and reused.

msgspec writes NaN and infinity as ``null``; venom refuses them instead
(SPEC 4), so :meth:`Codec.encode` checks any payload that contains ``null``
and raises :class:`NonFiniteError` naming the field. numpy scalars and arrays
are converted explicitly (``.item()`` / ``.tolist()``), never pickled.
"""

from __future__ import annotations

import math
import operator
from typing import Any, TypeVar

import msgspec

from venom.schemas.errors import NonFiniteError, SchemaError
from venom.schemas.messages import BeatRecord, Mesh, Pulse, Reply

T = TypeVar("T")

#: Largest payload venom decodes; bigger ones are refused before parsing.
DEFAULT_MAX_BYTES = 256 * 1024


def _enc_hook(obj: Any) -> Any:
    module = type(obj).__module__
    if module == "numpy":
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return obj.item()
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


def find_non_finite(value: Any, path: str = "$") -> str | None:
    """Return the JSON path of the first NaN/inf float inside ``value``, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            found = find_non_finite(getattr(value, field), f"{path}.{field}")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_non_finite(item, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = find_non_finite(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(value).__module__ == "numpy":
        return find_non_finite(_enc_hook(value), path)
    return None


#: The fields of a BeatRecord, in order, and where its pulse is among them.
_RECORD_FIELDS: tuple[str, ...] = BeatRecord.__struct_fields__
_PULSE_AT = _RECORD_FIELDS.index("pulse")
_record_values = operator.attrgetter(*_RECORD_FIELDS)
#: :class:`BeatRecord` with its ``pulse`` as already-encoded bytes: the same
#: fields in the same order, none omitted, so it encodes to the very bytes the
#: record does (built from BeatRecord's own fields, so it follows the schema).
_RecordWire = msgspec.defstruct(
    "_RecordWire",
    [(name, msgspec.Raw if name == "pulse" else Any) for name in _RECORD_FIELDS],
    gc=False,
)


class Codec:
    """Encoders and decoders for the venom wire format (JSON).

    One instance per process is enough; decoders are cached per type.

    >>> codec = Codec()
    >>> data = codec.encode(Weights())
    >>> codec.decode(Weights, data)
    Weights(schema=1, R=0.25, B=0.25, E=0.25, O=0.25)
    """

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._canonical = msgspec.json.Encoder(enc_hook=_enc_hook, order="sorted")
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
        self.reply_decoder: msgspec.json.Decoder[Reply] = self.decoder(Reply)  # type: ignore[arg-type]
        self.mesh_decoder: msgspec.json.Decoder[Mesh] = self.decoder(Mesh)  # type: ignore[arg-type]
        #: The last pulse :meth:`encode_pulse` encoded, and its bytes.
        self._pulse: Pulse | None = None
        self._pulse_data = msgspec.Raw(b"")

    def decoder(self, kind: type[T]) -> msgspec.json.Decoder[T]:
        """Return the (cached) decoder for ``kind``."""
        dec = self._decoders.get(kind)
        if dec is None:
            dec = msgspec.json.Decoder(kind)
            self._decoders[kind] = dec
        return dec

    def encode(self, msg: Any) -> bytes:
        """Encode ``msg`` as compact JSON; refuse NaN/inf with NonFiniteError."""
        return self._encode_checked(msg, msg)

    def _encode_checked(self, wire: Any, msg: Any) -> bytes:
        """Encode ``wire`` (``msg``, or its wire form); NaN/inf in ``msg`` is refused."""
        try:
            data = self._encoder.encode(wire)
        except (TypeError, NotImplementedError, OverflowError) as exc:
            raise SchemaError(f"cannot encode {type(msg).__name__}: {exc}") from exc
        if b"null" in data:
            self._refuse_non_finite(msg)
        return data

    def encode_pulse(self, pulse: Pulse) -> bytes:
        """:meth:`encode`, keeping the bytes for the beat's record (:meth:`encode_record`)."""
        data = self.encode(pulse)
        self._pulse = pulse
        self._pulse_data = msgspec.Raw(data)
        return data

    def encode_record(self, record: BeatRecord) -> bytes:
        """:meth:`encode` of a beat record, its pulse not encoded twice.

        When ``record.pulse`` is the pulse :meth:`encode_pulse` encoded last
        (the same object; the arbiter never changes a pulse's dicts after),
        its bytes go into the record as they are: byte for byte what
        :meth:`encode` makes.
        """
        if record.pulse is not self._pulse:
            return self.encode(record)
        values = list(_record_values(record))
        values[_PULSE_AT] = self._pulse_data
        return self._encode_checked(_RecordWire(*values), record)

    def encode_canonical(self, msg: Any) -> bytes:
        """Encode with sorted keys and no whitespace (ledger entry bytes)."""
        data = self._canonical.encode(msg)
        if b"null" in data:
            self._refuse_non_finite(msg)
        return data

    def _refuse_non_finite(self, msg: Any) -> None:
        where = find_non_finite(msg)
        if where is not None:
            raise NonFiniteError(
                f"{type(msg).__name__}: non-finite float at {where} (NaN/inf are not allowed)"
            )

    def decode(self, kind: type[T], data: bytes, *, max_bytes: int = 0) -> T:
        """Decode ``data`` as ``kind``; raise SchemaError naming what is wrong.

        ``max_bytes`` (> 0) replaces the codec's limit for this call: the ledger
        reads records the stream already took, whose limit is the stream's.
        """
        limit = max_bytes or self.max_bytes
        if len(data) > limit:
            raise SchemaError(
                f"{kind.__name__}: payload of {len(data)} bytes exceeds the limit of {limit} bytes"
            )
        try:
            return self.decoder(kind).decode(data)
        except msgspec.DecodeError as exc:
            raise SchemaError(f"{kind.__name__}: {exc}") from exc

    def decode_reply(self, data: bytes) -> Reply:
        """Decode any plugin reply (tagged union on ``type``)."""
        if len(data) > self.max_bytes:
            raise SchemaError(
                f"reply: payload of {len(data)} bytes exceeds the limit of {self.max_bytes} bytes"
            )
        try:
            return self.reply_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise SchemaError(f"reply: {exc}") from exc
