"""The `naiad` command: Typer + Rich, one module per noun, built on the SDK only."""
