"""Time in one place: timezone-aware UTC datetimes truncated to milliseconds, and epoch ms.

MongoDB stores datetimes with millisecond precision, so values are truncated before they are
written and compare equal after a round trip. Cursors and fine comparisons use the integer
`*_ms` fields (the embedded server compares datetimes within one second wrongly).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    """Now, timezone-aware UTC, truncated to the millisecond."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_ms(value: datetime) -> int:
    """Epoch milliseconds of a datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Timezone-aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def as_utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime truncated to the millisecond."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range") from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def day_start(value: datetime) -> datetime:
    """Midnight UTC of the day holding `value`."""
    value = as_utc(value)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def days_between(start: datetime, end: datetime) -> list[datetime]:
    """Every UTC midnight from the day of `start` to the day of `end`, inclusive."""
    day, last = day_start(start), day_start(end)
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out


def now_ms() -> int:
    """Now in epoch milliseconds."""
    return to_ms(utcnow())


def ms_datetime(ms: int | None) -> datetime | None:
    """The datetime of an epoch-ms field; 0 or None (never happened) gives None."""
    return from_ms(ms) if ms else None


def stamp(now: datetime | None = None) -> dict:
    """The `$set` fields that mark a document as updated now.

    Update operators never carry datetime values: nx-27017 stores a datetime written by `$set`,
    `$max` or `$push` as a string. Times that change after insert are stored as epoch ms.
    """
    return {"updated_at_ms": to_ms(now or utcnow())}
