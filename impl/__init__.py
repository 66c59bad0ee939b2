"""The delivery algorithm (sans-IO), its drivers, the catalogue of flawed strategies, the CLI."""
