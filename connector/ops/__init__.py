"""The operator's commands beside `run`: check (read-only), status, savepoints and
offset resets, dead letters, migrate, and the demo."""
