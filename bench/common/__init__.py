"""What the benchmark scripts share: servers, synthetic data and its seeding, timing, reports."""
