"""Renderers: functions that turn results into lines (or rich renderables); they never print."""
