"""Building the Mongo query of an admin list: the search box, the filters (datetimes moved
onto their epoch-ms twins) and the org scope, merged into one flat query."""

from __future__ import annotations

from typing import Any

from starlette_admin.filters import FilterGroup

from chatadmin.clock import to_ms

# Datetime fields whose filters run on their integer epoch-ms twin (exact on every server).
MS_TWINS = {"created_at": "created_at_ms", "period_start": "period_start_ms"}


def rule_fields(group: FilterGroup | None) -> set[str]:
    """Every field a filter tree has a rule on."""
    found: set[str] = set()
    for rule in getattr(group, "rules", []) or []:
        if hasattr(rule, "rules"):
            found |= rule_fields(rule)
        elif getattr(rule, "field", None):
            found.add(rule.field)
    return found


def mentions(group: FilterGroup | None, names: set[str]) -> bool:
    """Whether a filter tree has a rule on one of the fields."""
    return bool(rule_fields(group) & names)


def ms_rewrite(query: Any) -> Any:
    """Move datetime conditions onto their `*_ms` twins."""
    if isinstance(query, list):
        return [ms_rewrite(q) for q in query]
    if not isinstance(query, dict):
        return query
    out = {}
    for key, value in query.items():
        if key in MS_TWINS:
            key = MS_TWINS[key]
            if isinstance(value, dict):
                value = {op: to_ms(v) if hasattr(v, "tzinfo") else v for op, v in value.items()}
            elif hasattr(value, "tzinfo"):
                value = to_ms(value)
            out[key] = value
        else:
            out[key] = ms_rewrite(value)
    return out


def merge_conditions(parts: list[dict]) -> dict:
    """AND the parts as one flat query where their keys differ, `$and` only for the rest.

    MongoDB answers both forms alike; nx-27017 evaluates a top-level `$and` in Python (ten
    times slower), and `$text` must sit at the top level anyway.
    """
    flat: list[dict] = []
    for part in parts:
        flat.extend(part["$and"] if set(part) == {"$and"} else [part])
    merged: dict = {}
    rest: list[dict] = []
    for part in flat:
        if set(part) & set(merged):
            rest.append(part)
        else:
            merged.update(part)
    if rest:
        merged["$and"] = rest
    return merged
