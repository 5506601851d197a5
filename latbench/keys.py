"""Content keys: the stable identity of specs, targets and fingerprints in the database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def content_key(payload: Mapping[str, Any]) -> str:
    """A 20-hex-digit SHA-256 of ``payload`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]
