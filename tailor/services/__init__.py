"""Services: the control plane's operations, free of HTTP (api/ calls them; so can the CLI)."""
