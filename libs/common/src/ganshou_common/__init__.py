"""Shared plumbing for Ganshou services."""
