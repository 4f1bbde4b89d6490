"""Real-time state in Redis: presence, typing, rate limits, live tails (losing it loses no data)."""
