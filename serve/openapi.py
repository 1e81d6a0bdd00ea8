"""The OpenAPI 3 description served at GET /api/v1/openapi.json (kept next to nothing else so it stays readable)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "example": "not_an_image"},
        "message": {"type": "string", "example": "the upload is not an image"}}}},
}
_CANDIDATE = {
    "type": "object",
    "required": ["label", "name", "confidence"],
    "properties": {
        "label": {"type": "string", "example": "2023_acme_roadster"},
        "name": {"type": "string", "example": "2023 Acme Roadster"},
        "make": {"type": "string"}, "model": {"type": "string"}, "year": {"type": "integer"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "calibrated: softmax(logits / temperature)"},
    },
}
_PREDICTION = {
    "type": "object",
    "required": ["view", "model", "specs", "notes", "timings_ms"],
    "properties": {
        "view": {"type": "object", "properties": {
            "label": {"type": "string", "enum": ["exterior", "interior"]},
            "confidence": {"type": "number"}, "interior": {"type": "boolean"},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}}}},
        "model": {"type": "object", "required": ["sure", "prediction", "top"], "properties": {
            "sure": {"type": "boolean", "description": "false when the top-1 confidence is under min_confidence"},
            "prediction": {"oneOf": [{"$ref": "#/components/schemas/Candidate"}, {"type": "null"}],
                           "description": "the best match, or null when not sure"},
            "top": {"type": "array", "items": {"$ref": "#/components/schemas/Candidate"},
                    "description": "the top-k candidates, best first (always present)"},
            "min_confidence": {"type": "number"}}},
        "specs": {"type": ["object", "null"], "description": "the best match's row of the bundle's specs table"},
        "thumbs": {"type": "object", "description": "example photos of the best match, by view (URLs)"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "image": {"type": "object"},
        "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
        "batch_size": {"type": "integer"},
    },
}


def _err(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_spec(version: str, max_upload_bytes: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "carscope", "version": version,
                 "description": "Identify a car's model-year from a photo, with its specifications. Every response "
                                "has an X-Request-ID header: the one the request sent when it is 1-128 characters "
                                "of A-Z, a-z, 0-9 and . _ : -, else a new one. The server's logs use the same id."},
        "paths": {
            "/api/v1/predict": {"post": {
                "summary": "Classify a photo: exterior/interior, top-k model-years, the best match's specs",
                "operationId": "predict",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary",
                                             "description": f"JPEG, PNG, WebP, GIF, BMP or TIFF; at most "
                                                            f"{max_upload_bytes} bytes in the request"}}}}}},
                "responses": {
                    "200": {"description": "the answer",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}}},
                    "400": _err("no `image` field, or an empty file"),
                    "413": _err("the request is larger than the upload limit"),
                    "415": _err("not an image, or an image format that is not supported"),
                    "422": _err("a truncated or corrupt image, a decompression bomb, or absurd dimensions"),
                    "503": _err("the models are loading, or the server is overloaded"),
                }}},
            "/api/v1/models": {"get": {"summary": "The served models: labels, input contract, metrics, serving settings",
                                       "operationId": "models",
                                       "responses": {"200": {"description": "models",
                                                             "content": {"application/json": {}}}}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                             "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "Liveness: the process answers", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness: models loaded and warm",
                                "responses": {"200": {"description": "ready"}, "503": _err("not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
        },
        "components": {"schemas": {"Error": _ERROR, "Candidate": _CANDIDATE, "Prediction": _PREDICTION}},
    }
