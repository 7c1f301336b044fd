"""qgnb.pvp (see DESIGN layers)."""
