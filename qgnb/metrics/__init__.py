"""qgnb.metrics (see DESIGN layers)."""
