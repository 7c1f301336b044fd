"""qgnb.zoo (see DESIGN layers)."""
