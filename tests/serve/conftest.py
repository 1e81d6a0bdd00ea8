"""Fixtures for serve's tests: a tiny bundle with known right answers (tinybundle.py) and the app over it.

    .venv/bin/python -m pytest -q tests/serve
"""

from __future__ import annotations

import pytest

from tests.serve.tinybundle import make_tiny_bundle


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("serve") / "bundle", int8=True)


@pytest.fixture(scope="session")
def app(bundle_dir):
    """One app for the read-only route tests (sessions are created once; tests must not change its state)."""
    from carscope.serve.app import create_app

    app = create_app(bundle_dir, {"providers": "cpu", "max_upload_mb": 1, "max_wait_ms": 1, "intra_op_threads": 1})
    yield app
    app.extensions["carscope"].close()


@pytest.fixture
def client(app):
    return app.test_client()
