"""Driving Debian's headless Chromium over the DevTools protocol, for the report's browser test."""
