"""Schemathesis against /api/schema: generated calls to every endpoint, with a key and without,
never answer 500, and their answers match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from project.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema", application)
# What the issue asks of every answer: never a 500, and as the schema says (status, type, body).
# Not schemathesis's guesses about how strict validation should be (a generated multipart body
# without the file is refused with 400 missing_file, as documented).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def keyed(transactional_db, captured_messages, settings):
    settings.QUERN_REQUIRE_KEYS = True
    settings.QUERN_RATE_PER_KEY = settings.QUERN_RATE_PER_ADDRESS = ""
    from indexing import access

    return access.create_key("fuzz", ["admin"])[1]


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_without_a_key(case, keyed):
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_with_an_admin_key(case, keyed):
    case.call_and_validate(headers={"Authorization": f"Bearer {keyed}"}, checks=CHECKS)
