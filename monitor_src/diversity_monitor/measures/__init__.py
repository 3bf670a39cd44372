"""What the monitor measures in ranked lists: pure functions, no I/O.

`metrics` (categories per top-k, slot collapse, percentiles; the hourly run, the baseline, the
capture reader and the gate all count with it) and `response_path` (where the ranked article
ids sit in an endpoint's response).
"""
