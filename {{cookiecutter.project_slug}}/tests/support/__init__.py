"""Helpers that the tests and the benchmarks share: live servers, websocket clients{% if cookiecutter.broker == "redis" %}, Redis{% endif %}."""
