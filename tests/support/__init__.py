"""Helpers shared by the tests: tiny models, fakes, dataset fixtures."""
