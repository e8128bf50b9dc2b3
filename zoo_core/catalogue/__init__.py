"""The catalogue: what exists (hook specifications, plugins, specs, registry.toml)."""
