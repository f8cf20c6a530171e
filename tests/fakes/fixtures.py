"""pytest fixtures for the fake provider servers. Import them into a test module:

    from fakes.fixtures import fake_openai, fake_anthropic  # noqa: F401

Each is function-scoped: a fresh server (empty fault queue, no batches) started before the test and
stopped after it.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from .anthropic_server import FakeAnthropicServer
from .openai_server import FakeOpenAIServer


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server
