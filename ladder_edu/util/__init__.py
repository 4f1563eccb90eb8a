"""util: small helpers every layer may use (atomic file writes); imports nothing from the package."""
