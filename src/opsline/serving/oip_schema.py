"""A recipe's pydantic schemas as Open Inference Protocol (KServe v2) tensors.

The mapping is generic — derived once from ``recipe.Request`` / ``recipe.Response`` when the
router is built, never per request — and *columnar*: each schema field is one tensor named
after the field, holding one element per row (shape ``[N]``; ``[N, 1, ...]`` is accepted on
input). Datatypes follow the field's type:

==========================================  ========  ===================================
field type                                  datatype  accepted on input
==========================================  ========  ===================================
``float``                                   FP64      FP16/32/64 and every INT/UINT
``int``                                     INT64     every INT/UINT
``bool``                                    BOOL      BOOL
``str``, ``Literal`` / ``Enum`` of strings  BYTES     BYTES (UTF-8 text)
anything else (lists, dicts, models)        BYTES     BYTES, each element a JSON document
==========================================  ========  ===================================

``Optional[X]`` maps like ``X``. An optional input tensor may be left out (every row gets the
field's default), and a JSON ``null`` element leaves that one row's field out — an extension
of the spec, which has no nulls, so partial rows need not be split into several calls.
Nested fields (the image recipe's ``labels``) travel as BYTES holding one JSON document per
row: a tensor cannot carry a ragged list of objects, and JSON keeps every key readable.

Everything here raises :class:`TensorError` (a 400 naming the tensor, and the row if one).
"""

from __future__ import annotations

import enum
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INTS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
FLOATS = frozenset({"FP16", "FP32", "FP64"})
# Which declared input datatypes a field of each kind takes, and the datatype it advertises.
_ACCEPTS = {
    "float": FLOATS | INTS,
    "int": INTS,
    "bool": frozenset({"BOOL"}),
    "bytes": frozenset({"BYTES"}),
    "json": frozenset({"BYTES"}),
}
_DATATYPE = {"float": "FP64", "int": "INT64", "bool": "BOOL", "bytes": "BYTES", "json": "BYTES"}
# Element checks by declared datatype family: `type(v) is` so True is not an INT, nor 1.5.
_ELEMENT_OK: dict[str, typing.Callable[[Any], bool]] = {
    "int": lambda v: type(v) is int,
    "float": lambda v: type(v) is float or type(v) is int,
    "bool": lambda v: type(v) is bool,
    "bytes": lambda v: type(v) is str,
}
_NUMPY = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


class TensorError(Exception):
    """A request the protocol layer refuses; ``status`` is the HTTP code (400 by default)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True, slots=True)
class Tensor:
    """One schema field as a tensor: its name, datatype and how its values are checked."""

    name: str
    kind: str  # float | int | bool | bytes | json
    required: bool

    @property
    def datatype(self) -> str:
        return _DATATYPE[self.kind]

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": [-1]}
        # Not in Triton's metadata but in MLServer's (``parameters`` on a metadata tensor):
        # a client can see which inputs it may leave out and which BYTES carry JSON.
        parameters = {
            **({} if self.required else {"optional": True}),
            **({"content_type": "application/json"} if self.kind == "json" else {}),
        }
        return {**meta, "parameters": parameters} if parameters else meta


def _kind(annotation: Any) -> str:
    """The tensor kind of a field annotation (see the module table)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        kinds = {_kind(a) for a in typing.get_args(annotation) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else "float" if kinds == {"int", "float"} else "json"
    if origin is typing.Literal:
        return _kind_of_values(typing.get_args(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return _kind_of_values([member.value for member in annotation])
        for base, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "bytes")):
            if issubclass(annotation, base):  # bool before int: bool subclasses int
                return kind
    return "json"


def _kind_of_values(values: Any) -> str:
    kinds = {_kind(type(value)) for value in values}
    return kinds.pop() if len(kinds) == 1 else "float" if kinds == {"int", "float"} else "json"


def tensors_of(model: type[BaseModel]) -> tuple[Tensor, ...]:
    """The tensors of a pydantic model, in field order."""
    return tuple(
        Tensor(name, _kind(field.annotation), field.is_required())
        for name, field in model.model_fields.items()
    )


# -- the request envelope ----------------------------------------------------------------
# Strict: a shape of [true] or ["2"] is not a shape (pydantic would coerce both to ints).
_STRICT = ConfigDict(strict=True)


class InputTensor(BaseModel):
    model_config = _STRICT

    name: str
    shape: list[typing.Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None  # checked per tensor below: flat or nested lists, per the spec


class RequestedOutput(BaseModel):
    model_config = _STRICT

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    model_config = _STRICT

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InputTensor] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request envelope; with the binary extension's header, inputs' raw bytes decoded."""
    binary = b""
    if header_length is not None:  # Inference-Header-Content-Length: JSON, then raw tensors
        try:
            cut = int(header_length)
        except ValueError:
            raise TensorError("Inference-Header-Content-Length must be an integer") from None
        body, binary = body[:cut], body[cut:]
    try:
        request = InferRequest.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise TensorError(f"invalid inference request: {where}: {first['msg']}") from None
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise TensorError(
                f"input tensor {tensor.name!r}: binary_data_size {size!r} does "
                f"not fit the {len(binary) - offset} binary bytes left"
            )
        tensor.data = _decode_binary(tensor, binary[offset : offset + size])
        offset += size
    return request


def _decode_binary(tensor: InputTensor, raw: bytes) -> list[Any]:
    if tensor.datatype == "BYTES":  # each element: 4-byte little-endian length, then bytes
        items, at = [], 0
        while at < len(raw):
            size = int.from_bytes(raw[at : at + 4], "little")
            chunk, at = raw[at + 4 : at + 4 + size], at + 4 + size
            try:
                items.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise TensorError(
                    f"input tensor {tensor.name!r} row {len(items)}: BYTES "
                    "element is not UTF-8 text"
                ) from None
        return items
    dtype = _NUMPY.get(tensor.datatype)
    if dtype is None:
        raise TensorError(f"input tensor {tensor.name!r}: unknown datatype {tensor.datatype!r}")
    import numpy as np

    if len(raw) % np.dtype(dtype).itemsize:
        raise TensorError(
            f"input tensor {tensor.name!r}: {len(raw)} binary bytes are not a "
            f"whole number of {tensor.datatype} elements"
        )
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


# -- tensors <-> rows --------------------------------------------------------------------
def _flatten(data: list[Any]) -> list[Any]:
    if not any(type(item) is list for item in data):
        return data  # the common case: already flat (tritonclient always sends flat data)
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if type(item) is list else (item,))
    return flat


def _family(datatype: str) -> str:
    return (
        "int"
        if datatype in INTS
        else "float"
        if datatype in FLOATS
        else "bool"
        if datatype == "BOOL"
        else "bytes"
    )


def _describe(kind: str) -> str:
    return {
        "float": "a number type (FP64, FP32, INT64 ...)",
        "int": "an integer type (INT64, INT32 ...)",
        "bool": "BOOL",
        "bytes": "BYTES",
        "json": "BYTES (JSON text)",
    }[kind]


def columns(
    request: InferRequest, spec: dict[str, Tensor], max_rows: int
) -> tuple[int, dict[str, list[Any]]]:
    """``(N, {field: N values})`` from the input tensors, after every protocol check."""
    rows: int | None = None
    first = ""
    values: dict[str, list[Any]] = {}
    for tensor in request.inputs:
        field = spec.get(tensor.name)
        if field is None:
            raise TensorError(
                f"unknown input tensor {tensor.name!r}; this model's inputs are {', '.join(spec)}"
            )
        if tensor.name in values:
            raise TensorError(f"input tensor {tensor.name!r} is given twice")
        if tensor.datatype not in _ACCEPTS[field.kind]:
            raise TensorError(
                f"input tensor {tensor.name!r} has datatype {tensor.datatype!r}; "
                f"expected {_describe(field.kind)}"
            )
        if type(tensor.data) is not list:
            raise TensorError(f"input tensor {tensor.name!r} has no data list")
        data = _flatten(tensor.data)
        if math.prod(tensor.shape) != len(data):
            raise TensorError(
                f"input tensor {tensor.name!r}: shape {tensor.shape} holds "
                f"{math.prod(tensor.shape)} elements but data has {len(data)}"
            )
        if not tensor.shape or any(dim != 1 for dim in tensor.shape[1:]):
            raise TensorError(
                f"input tensor {tensor.name!r}: shape {tensor.shape} is not one "
                "element per row; use [N] (or [N, 1])"
            )
        if rows is None:
            rows, first = tensor.shape[0], tensor.name
        elif tensor.shape[0] != rows:
            raise TensorError(
                f"input tensor {tensor.name!r} has {tensor.shape[0]} rows but "
                f"{first!r} has {rows}; every input needs one element per row"
            )
        ok = _ELEMENT_OK[_family(tensor.datatype)]
        for row, value in enumerate(data):
            if value is not None and not ok(value):
                raise TensorError(
                    f"input tensor {tensor.name!r} row {row}: {value!r} is not a "
                    f"{tensor.datatype} value"
                )
        values[tensor.name] = data
    assert rows is not None  # InferRequest requires at least one input
    if rows == 0 or rows > max_rows:
        raise TensorError(f"inputs have {rows} rows; 1 to {max_rows} are accepted per request")
    missing = [name for name, field in spec.items() if field.required and name not in values]
    if missing:
        raise TensorError(
            f"required input tensor {missing[0]!r} is missing (required: "
            f"{', '.join(n for n, f in spec.items() if f.required)})"
        )
    return rows, values


def build_rows(
    rows: int, values: dict[str, list[Any]], spec: dict[str, Tensor]
) -> list[dict[str, Any]]:
    """One dict per row; a ``null`` element leaves that row's field out (its default)."""
    records: list[dict[str, Any]] = [{} for _ in range(rows)]
    for name, data in values.items():
        decode = spec[name].kind == "json"
        for row, (record, value) in enumerate(zip(records, data, strict=True)):
            if value is None:
                continue
            if decode:
                try:
                    value = json.loads(value)
                except ValueError as error:
                    raise TensorError(
                        f"input tensor {name!r} row {row}: not JSON text ({error})"
                    ) from None
            record[name] = value
    return records


def validation_message(error: ValidationError, limit: int = 3) -> str:
    """A pydantic error over ``list[Request]`` as "input tensor 'x' row i: reason; ..."."""
    parts = []
    for entry in error.errors()[:limit]:
        loc = list(entry.get("loc", ()))
        row = loc.pop(0) if loc and isinstance(loc[0], int) else None
        where = f"input tensor {loc[0]!r}" if loc else "input"
        where += f" row {row}" if row is not None else ""
        parts.append(f"{where}: {entry.get('msg', 'invalid')}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def output_tensors(
    responses: list[BaseModel], selected: tuple[Tensor, ...]
) -> list[dict[str, Any]]:
    """The response fields as output tensors of shape ``[N]``."""
    dumped = [response.model_dump(mode="json") for response in responses]
    tensors = []
    for tensor in selected:
        data = [row.get(tensor.name) for row in dumped]
        if tensor.kind == "json":
            data = [None if value is None else json.dumps(value) for value in data]
        tensors.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": [len(data)], "data": data}
        )
    return tensors
