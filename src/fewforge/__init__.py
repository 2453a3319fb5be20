"""fewforge."""
