"""Real servers for tests: S3 (moto), Azure Blob Storage (Azurite), redis-server, tmpfs mounts,
free loopback ports."""
