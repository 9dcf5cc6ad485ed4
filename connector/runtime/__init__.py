"""What runs the protocol: the runner (the flat consumer loop, rebalances, shutdown),
the commit worker thread, heartbeat and operator requests, gauges and the progress
line, interpreter tuning and the retry of transient failures."""
