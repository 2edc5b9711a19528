"""Fixtures shared by the repository-level tests."""

import pytest

import site_build


@pytest.fixture(scope="session")
def build_log():
    """The log of a build of the site into _build/html (shared by every test file of a worker)."""
    return site_build.build()
