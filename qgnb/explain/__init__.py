"""qgnb.explain (see DESIGN layers)."""
