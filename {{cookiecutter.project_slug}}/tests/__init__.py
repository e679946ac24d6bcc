"""Tests of the project: unit and property tests of the core, live tests against real servers."""
