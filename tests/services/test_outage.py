"""What a process remembers of a MongoDB outage, and what it tells the operator."""

from __future__ import annotations

import logging

from pymongo.errors import NetworkTimeout

from chatadmin import outage as outage_module
from chatadmin.outage import Outage


def test_an_outage_holds_the_doors_and_says_why_at_most_once_a_minute(caplog, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(outage_module.time, "monotonic", lambda: now[0])
    seen = Outage()
    with caplog.at_level(logging.WARNING, logger="chatadmin.outage"):
        seen.failed(NetworkTimeout("127.0.0.1:27017: timed out"))
        assert seen.down
        now[0] += 30
        seen.failed(NetworkTimeout("again"))
        seen.failed()  # a probe's failure: no cause to tell
        now[0] += outage_module.HOLD_S + 1
        assert not seen.down
        now[0] += 30
        seen.failed(NetworkTimeout("a minute on"))
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "MongoDB unreachable (NetworkTimeout: 127.0.0.1:27017: timed out): writes go to the "
        "spool, reads answer 503",
        "MongoDB unreachable (NetworkTimeout: a minute on): writes go to the spool, reads "
        "answer 503",
    ]
    seen.recovered()
    assert not seen.down
