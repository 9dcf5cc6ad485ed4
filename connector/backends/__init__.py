"""State backends: where a snapshot is made durable before its commit."""
