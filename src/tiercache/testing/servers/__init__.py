"""Real servers for tests: S3 (moto), redis-server, tmpfs mounts, free loopback ports."""
