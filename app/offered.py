"""The chat backends this server offers, and the ones the operator adds on the admin side.

    spec = add_custom_backend(db, "openai-compatible", "moodshelf-run-3", "http://127.0.0.1:8000/v1")
    custom_backend_labels(db)      # ['openai-compatible:moodshelf-run-3@http://127.0.0.1:8000/v1']
    key_sent(spec)                 # 'none (OPENAI_COMPATIBLE_API_KEY goes only to OPENAI_COMPATIBLE_BASE_URL)'

Recommend, Compare and Arena answer only with an offered backend: the local base model, its
finished runs, GPT and Claude by their default models, the server of OPENAI_COMPATIBLE_BASE_URL, and what is
added here. `Services.backend` checks every label against that list on the server, whatever the page sent, so a
visitor cannot make the server call a URL or model of their choosing (server-side request forgery). Typing a
URL or a model name is an admin action: the *Backends* tab (behind MOODSHELF_AUTH; without it the single
local page is the admin) adds one, and from then on every tab offers it.

Keys stay with their server: a URL added here receives OPENAI_COMPATIBLE_API_KEY only when it is
OPENAI_COMPATIBLE_BASE_URL itself (vendors/base.py enforces it for every caller).
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from sqlalchemy import delete, select

from db.engine import Database
from db.models import ChatBackend
from training.backends import BackendError, BackendSpec
from vendors import DEFAULT_MODELS, KEY_ENVS
from vendors.base import same_server
from vendors.labels import API_KINDS as KINDS, current_label
NOT_OFFERED = ("This backend is not offered by this server: pick one from the list (the operator adds others "
               "on the admin side, in the Backends tab).")


class OfferError(ValueError):
    """A backend the operator tried to add that cannot be one, worded for the form."""


def custom_backend_labels(db: Database) -> list[str]:
    with db.session() as s:
        return [current_label(label) for label in s.scalars(select(ChatBackend.label).order_by(ChatBackend.id))]


def check_url(url: str) -> str:
    """An http(s) URL with a host and no credentials in it (they would be shown in every dropdown)."""
    url = (url or "").strip()
    if not url:
        raise OfferError("An OpenAI-compatible backend needs its base URL, e.g. http://127.0.0.1:8000/v1.")
    if any(c.isspace() for c in url) or len(url) > 500:
        raise OfferError("The base URL must be one line without spaces (500 characters at most).")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OfferError(f"'{url}' is not an http(s) URL with a host, e.g. http://127.0.0.1:8000/v1.")
    try:
        parts.port
    except ValueError:
        raise OfferError(f"The port in '{url}' is not a number from 1 to 65535.") from None
    if parts.username or parts.password:
        raise OfferError("Put no user or password in the URL: a key for the server goes in "
                         "OPENAI_COMPATIBLE_API_KEY (sent only to OPENAI_COMPATIBLE_BASE_URL).")
    return url.rstrip("/")


def spec_for(kind: str, model: str, base_url: str | None = None) -> BackendSpec:
    """The backend the admin form describes, validated (kind, a one-line model name, a URL for a server)."""
    if kind not in KINDS:
        raise OfferError(f"Unknown kind '{kind}': pick one of {', '.join(KINDS)}.")
    model = (model or "").strip()
    if not model or len(model) > 300 or any(c in model for c in "\r\n\t") or "@" in model:
        raise OfferError("Give the model as one name without '@' (300 characters at most), e.g. gpt-4.1-mini or "
                         "moodshelf-run-3.")
    if kind == "openai-compatible":
        spec = BackendSpec(kind="openai-compatible", model=model, base_url=check_url(base_url or ""))
    else:
        if (base_url or "").strip():
            raise OfferError(f"A {kind} backend goes to {kind.upper()}_BASE_URL or the vendor's API; leave the "
                             "URL empty (or add it as openai-compatible).")
        spec = BackendSpec(kind=kind, model=model)  # type: ignore[arg-type]
    if BackendSpec.from_label(spec.label) != spec:  # the label is what the dropdowns carry: it must read back
        raise OfferError(f"'{spec.label}' would not read back as the same backend: simplify the model name.")
    return spec


def add_custom_backend(db: Database, kind: str, model: str, base_url: str | None = None,
                       offered: list[str] | None = None) -> BackendSpec:
    """Store a backend the operator typed; every tab offers it from the next page load on."""
    spec = spec_for(kind, model, base_url)
    if spec.label in (offered or []) or spec.label in custom_backend_labels(db):
        raise OfferError(f"'{spec.label}' is already offered.")
    with db.begin() as s:
        s.add(ChatBackend(label=spec.label, kind=spec.kind, model=spec.model, base_url=spec.base_url))
    return spec


def remove_custom_backend(db: Database, label: str) -> bool:
    with db.begin() as s:
        stored = [lb for lb in s.scalars(select(ChatBackend.label)) if current_label(lb) == current_label(label)]
        return bool(stored) and s.execute(delete(ChatBackend).where(ChatBackend.label.in_(stored))).rowcount > 0


def key_sent(spec: BackendSpec) -> str:
    """Which key, if any, a backend's requests carry (shown in the admin table)."""
    if spec.is_local or spec.kind == "offline":
        return "— (local)"
    env = KEY_ENVS[spec.kind]
    if spec.kind == "openai-compatible":
        configured = os.environ.get("OPENAI_COMPATIBLE_BASE_URL")
        if not same_server(spec.base_url, configured):
            return "none (OPENAI_COMPATIBLE_API_KEY goes only to OPENAI_COMPATIBLE_BASE_URL)"
        return env if os.environ.get(env) else "none (OPENAI_COMPATIBLE_API_KEY is not set)"
    return env if os.environ.get(env) else f"none: {env} is not set (the column says how to add it)"


def default_api_labels() -> list[str]:
    """GPT and Claude by their default models, and OPENAI_COMPATIBLE_BASE_URL's server when it is set."""
    labels = [BackendSpec(kind=k, model=m).label for k, m in DEFAULT_MODELS.items()]
    if url := os.environ.get("OPENAI_COMPATIBLE_BASE_URL"):
        model = os.environ.get("OPENAI_COMPATIBLE_MODEL", "default")
        labels.append(BackendSpec(kind="openai-compatible", model=model, base_url=url).label)
    return labels


def require_offered(labels: list[str], offered: list[str]) -> None:
    """Refuse any label that is not one of `offered` (compared in today's grammar, so an older spelling of an
    offered backend still passes and nothing else does)."""
    allowed = {current_label(label) for label in offered}
    if any(current_label(label) not in allowed for label in labels):
        raise BackendError(NOT_OFFERED)
