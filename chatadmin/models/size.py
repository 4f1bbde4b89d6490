"""The BSON size of a document as the server would store it, checked before a write: the
embedded server does not enforce MongoDB's 16 MB limit, and our own limits are smaller."""

from __future__ import annotations

from typing import Any

import bson

from chatadmin.models.jsonfield import escape_keys


def document_size(doc: Any) -> int:
    """BSON size of a model or dict, as the server would store it."""
    if hasattr(doc, "storage_fields"):
        data = doc.storage_fields()
    else:
        data = escape_keys(doc.model_dump() if hasattr(doc, "model_dump") else doc)
    return len(bson.encode(data))
