"""Fail fast when the Hugging Face hub cannot be reached, instead of minutes of retries."""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from .errors import UserError

PROBE_TIMEOUT_S = 3.0


def hub_offline_mode() -> bool:
    """True when the user asked the Hugging Face libraries to use their local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def ensure_hub_reachable(what: str, name: str, local_hint: str) -> None:
    """Raise a UserError naming `name` and how to pass a local copy when the hub is unreachable.

    Skipped in offline mode (HF_HUB_OFFLINE=1), where the libraries read their own cache.
    """
    if hub_offline_mode():
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot load {what} '{name}': the Hugging Face hub ({url.hostname}) is unreachable "
            f"({exc.strerror or exc}) and '{name}' is not a local path; {local_hint}"
        ) from None
