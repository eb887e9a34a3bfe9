"""Fault injection: an HTTP proxy speaking S3 errors, a TCP proxy, damage to disk-tier files."""
