"""Shared checks, label encoding and chunked loops under ``working_memory``."""
