"""Shared plumbing: errors, column types, time, crypto, pagination."""
