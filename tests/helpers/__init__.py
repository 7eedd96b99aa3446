"""Helpers shared by several test files (imported as `helpers.X`: pytest puts tests/ on sys.path)."""
