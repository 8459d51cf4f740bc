"""Is a hub repository loadable now? Asked through huggingface_hub itself (its endpoint, proxies and
offline mode), once, with a short timeout, instead of minutes of retries inside each loader."""
from __future__ import annotations

import os
import re
from typing import Optional

from ..host.errors import first_line

PROBE_TIMEOUT_S = 5.0


def hub_offline_mode() -> bool:
    """True when the user asked the Hugging Face libraries to use their local cache only, as
    huggingface_hub itself read it (at import: the loaders go by that, not by today's variable)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def in_local_cache(repo_id: str, repo_type: str) -> bool:
    """Whether an earlier download left this repository in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    probe = "config.json" if repo_type == "model" else "README.md"
    return isinstance(try_to_load_from_cache(repo_id, probe, repo_type=repo_type), str)


def hub_problem(repo_id: str, repo_type: str) -> Optional[str]:
    """None when `repo_id` can be loaded now (from the hub, or offline from the local cache);
    otherwise why not, in a few words."""
    if hub_offline_mode():
        if in_local_cache(repo_id, repo_type):
            return None
        return "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError

    # the endpoint is read now, not at import, so HF_ENDPOINT set by a caller counts
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    info = api.model_info if repo_type == "model" else api.dataset_info
    try:
        info(repo_id, timeout=PROBE_TIMEOUT_S)
    except RepositoryNotFoundError:
        return "no such repository on the hub"
    except HfHubHTTPError:
        return None  # reachable; gated or private: the loader says what the token needs
    except Exception as exc:  # connection refused, DNS, proxy, timeout: transport errors of any kind
        return f"the Hugging Face hub is unreachable ({transport_reason(exc)})"
    return None


def transport_reason(exc: BaseException) -> str:
    """The operating system's words where the error carries them ("[Errno 111] Connection
    refused"): requests-based releases wrap them in a page of retry and pool details."""
    found = re.search(r"\[Errno -?\d+\] [^'\"()\\]+", str(exc))
    return found.group(0).strip() if found else first_line(exc)[:160]
