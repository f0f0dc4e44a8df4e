"""JSON Schemas of request and error bodies, for the OpenAPI document only.

Requests are validated by :mod:`modeldeploy_predictor.parsing` (faster and with
better messages than schema validation); these schemas document the same shapes.
"""

from __future__ import annotations

from typing import Any

from ..parsing import DATATYPES

_VALUE = {"type": ["number", "string", "boolean", "null"]}  # per the feature's kind
_NUMBER_ROWS = {"type": "array", "items": {"type": "array", "items": _VALUE}}

V2_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {
            "type": "array",
            "description": "one 2-D tensor [rows, features] (all-numeric models), or one "
            "1-D tensor per feature (named; BYTES for strings, BOOL for booleans)",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string", "enum": DATATYPES},
                    "data": {"type": "array"},
                    "parameters": {"type": "object"},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    },
}

V1_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["instances"],
    "properties": {
        "instances": {
            "oneOf": [
                _NUMBER_ROWS,
                {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": _VALUE},
                },
            ]
        }
    },
}

_RECORDS = {
    "type": "array",
    "items": {"type": "object", "additionalProperties": _VALUE},
}

PLAIN_REQUEST: dict[str, Any] = {
    "oneOf": [
        _RECORDS,
        {"type": "object", "required": ["records"], "properties": {"records": _RECORDS}},
        {
            "type": "object",
            "required": ["columns"],
            "properties": {
                "columns": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": _VALUE},
                }
            },
        },
    ]
}

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong"},
        "reason": {"type": "string", "description": "machine-readable label"},
        "field": {"type": "string"},
        "expected": {},
        "got": {},
        "error_class": {"type": "string", "description": "exception class (500 only)"},
    },
}

_OUTCOME = {
    "type": "object",
    "required": ["label"],
    "properties": {
        "request_id": {
            "type": "string",
            "description": "x-request-id of the prediction (or send it as the header)",
        },
        "label": {"description": "the true label or value; a list for a batch prediction"},
    },
}
FEEDBACK_REQUEST: dict[str, Any] = {
    "oneOf": [
        _OUTCOME,
        {
            "type": "object",
            "required": ["outcomes"],
            "properties": {"outcomes": {"type": "array", "items": _OUTCOME, "maxItems": 1000}},
        },
    ]
}


def error_responses() -> dict[int | str, dict[str, Any]]:
    doc = {"content": {"application/json": {"schema": ERROR}}}
    return {
        code: {"description": text, **doc}
        for code, text in [
            (400, "malformed JSON"),
            (404, "unknown model or version"),
            (413, "body too large"),
            (415, "not JSON"),
            (422, "wrong shape, dtype, features, values or empty batch"),
            (500, "the model raised"),
            (503, "not ready / shutting down"),
        ]
    }
