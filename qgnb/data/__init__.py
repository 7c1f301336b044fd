"""qgnb.data (see DESIGN layers)."""
