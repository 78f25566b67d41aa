"""The OpenAPI 3.1 description of the JSON API, served at /api/schema (tests hold it to the code)."""
from __future__ import annotations

from typing import Any

from indexing.models import Status

FORMATS = ["csv", "jsonl", "json", "html", "markdown", "text"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: dict[str, Any], headers: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

_SUBMIT_OPTIONS = {
    "name": {"type": "string", "examples": ["notes.md"]},
    "format": {"type": "string", "enum": FORMATS},
    "encoding": {"type": "string", "examples": ["cp1252"]},
    "chunk_size": {"type": "integer", "minimum": 1},
    "replace": {"type": "integer", "description": "Make this a new version of that document."},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "examples": ["csv_header"]},
                    "message": {"type": "string"},
                    "line": {"type": "integer"},
                    "record": {"type": "integer"},
                },
            }
        },
    },
    "JobError": {
        "type": "object",
        "required": ["message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "line": {"type": "integer"},
            "record": {"type": "integer"},
            "byte": {"type": "integer"},
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "status", "document", "progress", "errors", "created_at", "started_at", "finished_at"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": list(Status.values)},
            "source": {"type": "string"},
            "document": {
                "type": "object",
                "required": ["id", "name", "format", "size", "sha256"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "format": {"type": "string", "enum": FORMATS},
                    "size": {"type": "integer"},
                    "sha256": {"type": "string"},
                },
            },
            "chunk_size": {"type": "integer"},
            "progress": {
                "type": "object",
                "required": ["records_total", "records_indexed", "chunks_total", "chunks_done"],
                "properties": {
                    name: {"type": "integer", "minimum": 0}
                    for name in ("records_total", "records_indexed", "chunks_total", "chunks_done")
                },
            },
            "errors": {"type": "array", "items": _ref("JobError")},
            "error_count": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": _NULLABLE_TIME,
            "split_finished_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "url": {"type": "string"},
            "metadata": {"type": "object", "description": "The submitter's own data (AMQP submit messages)."},
        },
    },
    "JobList": {
        "type": "object",
        "required": ["total", "limit", "offset", "results"],
        "properties": {
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "results": {"type": "array", "items": _ref("Job")},
        },
    },
    "Document": {
        "type": "object",
        "required": ["id", "name", "format", "size", "sha256", "live_job"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "format": {"type": "string", "enum": FORMATS},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
            "title": {"type": "string"},
            "live_job": {"type": ["integer", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "SubmitJson": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "content": {"type": "string", "description": "The document as text. Exactly one of content / content_base64."},
            "content_base64": {"type": "string", "description": "The document's bytes, base64."},
            **_SUBMIT_OPTIONS,
        },
    },
    "SubmitMultipart": {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}, **_SUBMIT_OPTIONS},
    },
    "SearchResults": {
        "type": "object",
        "required": ["query", "total", "took_ms", "hits"],
        "properties": {
            "query": {"type": "string"},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "took_ms": {"type": "number"},
            "hits": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["score", "snippet", "record", "document"],
                    "properties": {
                        "score": {"type": "number"},
                        "snippet": {"type": "string", "description": "HTML: text escaped, matches in <mark>."},
                        "record": {
                            "type": "object",
                            "required": ["id", "key", "title", "fields"],
                            "properties": {
                                "id": {"type": "integer"},
                                "key": {"type": "string"},
                                "title": {"type": "string"},
                                "fields": {"type": "object"},
                            },
                        },
                        "document": {
                            "type": "object",
                            "required": ["id", "name"],
                            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}

_LOCATION = {"Location": {"description": "The job's URL", "schema": {"type": "string"}}}
_PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


PATHS: dict[str, Any] = {
    "/api/documents": {
        "post": {
            "summary": "Submit documents: one job per file",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": "A key used before (here or as an AMQP idempotency_key) returns that job; one file per request.",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": _ref("SubmitMultipart")},
                    "application/json": {"schema": _ref("SubmitJson")},
                },
            },
            "responses": {
                "202": _json(
                    "Accepted: the job (a list of jobs for several files)",
                    {"oneOf": [_ref("Job"), {"type": "array", "items": _ref("Job")}]},
                    _LOCATION,
                ),
                "400": _error("Invalid request"),
                "404": _error("No document to replace"),
                "405": _error("Method not allowed"),
                "413": _error("Document too large"),
                "415": _error("Unsupported media type or format"),
                "503": _error("Too much work is waiting (backpressure); try again after Retry-After seconds"),
            },
        }
    },
    "/api/documents/{document_id}/reindex": {
        "post": {
            "summary": "Re-index a stored document: a new job; the live version stays until it succeeds",
            "parameters": [_id_param("document_id")],
            "responses": {"202": _json("Accepted: the new job", _ref("Job"), _LOCATION), "404": _error("No such document")},
        }
    },
    "/api/jobs/{job_id}/cancel": {
        "post": {
            "summary": "Cancel an unfinished job: it ends cancelled, its records are removed, the previous version stays",
            "parameters": [_id_param("job_id")],
            "responses": {
                "200": _json("The cancelled job", _ref("Job")),
                "404": _error("No such job"),
                "409": _error("The job already succeeded or failed"),
            },
        }
    },
    "/api/jobs/{job_id}/retry": {
        "post": {
            "summary": "Retry a failed or cancelled job: a new job over the same input",
            "parameters": [_id_param("job_id")],
            "responses": {
                "202": _json("Accepted: the new job", _ref("Job"), _LOCATION),
                "404": _error("No such job"),
                "409": _error("The job is not failed or cancelled"),
            },
        }
    },
    "/api/documents/{document_id}": {
        "get": {
            "summary": "A document and its live job",
            "parameters": [_id_param("document_id")],
            "responses": {"200": _json("The document", _ref("Document")), "404": _error("No such document")},
        }
    },
    "/api/jobs": {
        "get": {
            "summary": "Jobs, newest first",
            "parameters": [{"name": "status", "in": "query", "schema": {"type": "string", "enum": list(Status.values)}}, *_PAGING],
            "responses": {"200": _json("A page of jobs", _ref("JobList")), "400": _error("Invalid parameter")},
        }
    },
    "/api/jobs/{job_id}": {
        "get": {
            "summary": "A job's status and progress",
            "parameters": [_id_param("job_id")],
            "responses": {"200": _json("The job", _ref("Job")), "404": _error("No such job")},
        }
    },
    "/api/search": {
        "get": {
            "summary": "Ranked full-text search over live records (web-search syntax)",
            "parameters": [
                {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                *_PAGING,
                {"name": "document", "in": "query", "schema": {"type": "integer"}},
            ],
            "responses": {"200": _json("Hits and total", _ref("SearchResults")), "400": _error("Invalid parameter")},
        }
    },
    "/api/status": {
        "get": {
            "summary": "Queues (ready, unacked, consumers), workers and their tasks, jobs by status, records per minute (staff only)",
            "responses": {"200": _json("The status now", {"type": "object"}), "403": _error("Not logged in as staff")},
        }
    },
    "/api/schema": {
        "get": {"summary": "This OpenAPI document", "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})}}
    },
    "/api/schema/messages/{name}": {
        "get": {
            "summary": "JSON Schema of an AMQP message: submit (quern.submit), event (quern.events), reply",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": ["submit", "event", "reply"]}}
            ],
            "responses": {"200": _json("A JSON Schema (2020-12)", {"type": "object"}), "404": _error("No such message schema")},
        }
    },
}


def openapi_schema() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Quern",
            "version": "1.0.0",
            "description": "Queue-driven document indexing: submit documents, follow their jobs, search.",
        },
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
