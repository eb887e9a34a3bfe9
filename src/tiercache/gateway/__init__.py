"""The S3-compatible HTTP gateway: tiercache's second front door (issue 14)."""
