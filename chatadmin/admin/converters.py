"""Form fields and filters for our models: `Literal` as choices, `X | None` and `Annotated`
unwrapped, and only the filters that answer the same on every server."""

from __future__ import annotations

import typing
from typing import Any, get_args, get_origin

from starlette_admin.contrib.beanie.converters import BeanieModelConverter
from starlette_admin.contrib.beanie.filters import (
    BeanieFilterRegistry,
    ContainsFilter,
    EndsWithFilter,
    StartsWithFilter,
)
from starlette_admin.converters import converts
from starlette_admin.fields import BaseField, EnumField, JSONField, StringField
from starlette_admin.filters import FilterApplyContext, filters
from starlette_admin.filters.generic import EqualFilter as BaseEqualFilter


class ExactFilter(BaseEqualFilter):
    """String equality that can use an index (no case-folding regex)."""

    def apply(self, ctx: FilterApplyContext) -> dict:
        return {ctx.field_name: str(ctx.value)}


class FilterRegistry(BeanieFilterRegistry):
    """Only filters that answer the same on MongoDB and nx-27017 (no `re.compile`, no nulls)."""

    @filters(StringField)
    def string_filters(self, field: BaseField) -> list:
        return [ExactFilter, ContainsFilter, StartsWithFilter, EndsWithFilter]


class Converter(BeanieModelConverter):
    """Converts our models: `Literal` to choices, `X | None` and `Annotated` unwrapped."""

    def convert(self, *args: Any, **kwargs: Any) -> BaseField:
        kind = kwargs.get("type")
        while get_origin(kind) is typing.Annotated:
            kind = get_args(kind)[0]
        kwargs["type"] = kind
        if kind is Any:
            return JSONField(**self._standard_type_common(**kwargs))
        return super().convert(*args, **kwargs)

    @converts(typing.Literal)
    def conv_literal(self, *args: Any, **kwargs: Any) -> BaseField:
        choices = [(v, str(v)) for v in get_args(kwargs["type"])]
        return EnumField(
            **self._standard_type_common(**kwargs),
            choices=choices,
            multiple=kwargs.get("multiple", False),
        )

    @converts(typing.Union)
    def conv_union(self, *args: Any, **kwargs: Any) -> BaseField:
        options = [a for a in get_args(kwargs["type"]) if a is not type(None)]
        if len(options) == 1:
            kwargs.update(type=options[0], required=False)
            return self.convert(*args, **kwargs)
        return JSONField(**self._standard_type_common(**kwargs))
