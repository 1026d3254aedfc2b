"""The eval gate: a suite of requests in plain words with the answers they must get, run against a
mesh's gateway, scored per category and compared with a baseline (``hivemesh eval``)."""
